"""waf=true: an AWS WAF web ACL on the REST API stage (HTTP APIs cannot have one).

- Managed rule groups pinned to static versions where AWS versions them (options.py,
  WAF_DEFAULT_RULE_VERSIONS, overridable with waf_rule_versions): a new AWS release changes
  nothing until the pin moves. The IP reputation list has no versions (AWS updates it live).
- Metric names start with the stack name, so two stacks in one account do not share metrics.
- Every request WAF evaluates is logged to the ``aws-waf-logs-<stack>-<stack id>`` log group
  (WAF requires the prefix): client IP, country, URI, query string, headers and the rules that matched.
  The Authorization and x-api-key headers are redacted before WAF writes the record.
"""

from __future__ import annotations

from aws_cdk import ArnFormat, Aws, Fn, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from slimserve.infra.log_groups import retained_log_group
from slimserve.infra.options import StackSettings

# Requests one client IP may send in any 5-minute window before WAF blocks it.
IP_RATE_LIMIT_PER_5_MIN = 3000
WAF_LOG_GROUP_PREFIX = "aws-waf-logs-"  # WAF refuses any other log group name
REDACTED_HEADERS = ("authorization", "x-api-key")

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


class RestApiWebAcl(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, settings: StackSettings, stage: apigw.Stage
    ) -> None:
        super().__init__(scope, construct_id)
        prefix = settings.stack_name

        def visibility(name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
            return wafv2.CfnWebACL.VisibilityConfigProperty(
                cloud_watch_metrics_enabled=True,
                metric_name=f"{prefix}-{name}",
                sampled_requests_enabled=True,
            )

        rules = [
            wafv2.CfnWebACL.RuleProperty(
                name=group,
                priority=priority,
                override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
                statement=wafv2.CfnWebACL.StatementProperty(
                    managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                        vendor_name="AWS",
                        name=group,
                        version=settings.waf_rule_versions.get(group),
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
                visibility_config=visibility(group),
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
                visibility_config=visibility("RateLimitPerIp"),
            )
        )
        self.web_acl = wafv2.CfnWebACL(
            self,
            "WebAcl",
            scope="REGIONAL",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=visibility("WebAcl"),
            rules=rules,
        )
        # stage_arn refers to the stage, so CloudFormation creates the stage first.
        self.association = wafv2.CfnWebACLAssociation(
            self, "Association", resource_arn=stage.stage_arn, web_acl_arn=self.web_acl.attr_arn
        )

        # The log group is retained when the stack goes, so its name carries the stack's id:
        # a stack created again under the same name gets a new group instead of a name clash.
        stack_guid = Fn.select(2, Fn.split("/", Aws.STACK_ID))
        log_group_name = f"{WAF_LOG_GROUP_PREFIX}{settings.stack_name}-{stack_guid}"
        self.log_group = retained_log_group(self, "Logs", settings.options, name=log_group_name)
        # WAF wants the log group's ARN without the ":*" suffix CloudFormation's Arn attribute has.
        log_group_arn = Stack.of(self).format_arn(
            service="logs",
            resource="log-group",
            resource_name=log_group_name,
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        self.logging = wafv2.CfnLoggingConfiguration(
            self,
            "Logging",
            resource_arn=self.web_acl.attr_arn,
            log_destination_configs=[log_group_arn],
            redacted_fields=[
                wafv2.CfnLoggingConfiguration.FieldToMatchProperty(single_header={"Name": name})
                for name in REDACTED_HEADERS
            ],
        )
        self.logging.node.add_dependency(self.log_group)
