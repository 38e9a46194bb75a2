"""waf=true: an AWS WAF web ACL on the REST API stage (HTTP APIs cannot have one)."""

from __future__ import annotations

from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

# Requests one client IP may send in any 5-minute window before WAF blocks it.
IP_RATE_LIMIT_PER_5_MIN = 3000

# (priority, managed rule group, rules switched to count-only with the reason)
MANAGED_RULE_GROUPS: tuple[tuple[int, str, dict[str, str]], ...] = (
    (
        10,
        "AWSManagedRulesCommonRuleSet",
        # Inference requests carry tensors: bodies far above this rule's 8 KB are normal.
        # Body size is bounded by the handler's max_body_bytes instead.
        {"SizeRestrictions_BODY": "tensor payloads exceed 8 KB by design"},
    ),
    (20, "AWSManagedRulesKnownBadInputsRuleSet", {}),
    (30, "AWSManagedRulesAmazonIpReputationList", {}),
)


def _visibility(name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
    return wafv2.CfnWebACL.VisibilityConfigProperty(
        cloud_watch_metrics_enabled=True, metric_name=name, sampled_requests_enabled=True
    )


class RestApiWebAcl(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, stage: apigw.Stage) -> None:
        super().__init__(scope, construct_id)
        rules = [
            wafv2.CfnWebACL.RuleProperty(
                name=group,
                priority=priority,
                override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
                statement=wafv2.CfnWebACL.StatementProperty(
                    managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                        vendor_name="AWS",
                        name=group,
                        rule_action_overrides=[
                            wafv2.CfnWebACL.RuleActionOverrideProperty(
                                name=rule,
                                action_to_use=wafv2.CfnWebACL.RuleActionProperty(count={}),
                            )
                            for rule in counted
                        ]
                        or None,
                    )
                ),
                visibility_config=_visibility(group),
            )
            for priority, group, counted in MANAGED_RULE_GROUPS
        ]
        rules.append(
            wafv2.CfnWebACL.RuleProperty(
                name="RateLimitPerIp",
                priority=40,
                action=wafv2.CfnWebACL.RuleActionProperty(block={}),
                statement=wafv2.CfnWebACL.StatementProperty(
                    rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                        aggregate_key_type="IP", limit=IP_RATE_LIMIT_PER_5_MIN
                    )
                ),
                visibility_config=_visibility("RateLimitPerIp"),
            )
        )
        self.web_acl = wafv2.CfnWebACL(
            self,
            "WebAcl",
            scope="REGIONAL",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=_visibility("slimserve"),
            rules=rules,
        )
        # stage_arn refers to the stage, so CloudFormation creates the stage first.
        self.association = wafv2.CfnWebACLAssociation(
            self, "Association", resource_arn=stage.stage_arn, web_acl_arn=self.web_acl.attr_arn
        )
