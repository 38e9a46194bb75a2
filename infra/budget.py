"""budget_monthly_usd: an AWS Budgets cost alarm on what this stack's resources cost per month.

The budget filters costs by the ``slimserve:model`` tag every taggable resource of the stack
carries. AWS Budgets sees a tag only after it is activated as a cost allocation tag (Billing
console, once per account; costs are tagged from then on), so activate ``slimserve:model``.
It notifies at 80 % of the amount actually spent and at 100 % forecast, by e-mail
(``budget_emails``) and/or to ``alarm_topic_arn``, whose access policy must allow
``budgets.amazonaws.com`` to publish (an existing topic's policy is not edited by this stack).
Budgets are account-wide, not regional: the name carries the region and the stack name.
"""

from __future__ import annotations

from aws_cdk import Aws
from aws_cdk import aws_budgets as budgets
from constructs import Construct

from slimserve.infra.options import StackSettings

MODEL_TAG = "slimserve:model"
# (notification type, threshold in percent of the budget)
NOTIFY_AT = (("ACTUAL", 80.0), ("FORECASTED", 100.0))


def create_budget(scope: Construct, construct_id: str, *, settings: StackSettings) -> budgets.CfnBudget:
    options = settings.options
    assert options.budget_monthly_usd is not None  # the stack creates a budget only then
    subscribers = [
        budgets.CfnBudget.SubscriberProperty(subscription_type="EMAIL", address=address)
        for address in options.budget_emails
    ]
    if options.alarm_topic_arn:
        subscribers.append(
            budgets.CfnBudget.SubscriberProperty(
                subscription_type="SNS", address=options.alarm_topic_arn
            )
        )
    return budgets.CfnBudget(
        scope,
        construct_id,
        budget=budgets.CfnBudget.BudgetDataProperty(
            budget_name=f"{settings.stack_name}-{Aws.REGION}-monthly",
            budget_type="COST",
            time_unit="MONTHLY",
            budget_limit=budgets.CfnBudget.SpendProperty(
                amount=options.budget_monthly_usd, unit="USD"
            ),
            cost_filters={"TagKeyValue": [f"user:{MODEL_TAG}${settings.model_name}"]},
        ),
        notifications_with_subscribers=[
            budgets.CfnBudget.NotificationWithSubscribersProperty(
                notification=budgets.CfnBudget.NotificationProperty(
                    notification_type=kind,
                    comparison_operator="GREATER_THAN",
                    threshold=threshold,
                    threshold_type="PERCENTAGE",
                ),
                subscribers=subscribers,
            )
            for kind, threshold in NOTIFY_AT
        ],
    )
