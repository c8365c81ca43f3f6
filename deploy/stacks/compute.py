"""Herald's services from the project's image: ECS Fargate (the API behind a load balancer
with its health check on /health, the router, a worker per channel, the scheduler, the
evaluator, the reconciler) or, with `compute=lambda`, the router and the workers as Lambda
functions on SQS event sources. Each service gets a role naming only what `deploy.services`
says it touches, its secrets from Secrets Manager, its logs in CloudWatch Logs, and its
scaling: backlog per task for consumers, CPU and requests for the API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import Aws, Duration, IgnoreMode, RemovalPolicy, Stack
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct, IConstruct

from core.resources.declaration import Resources
from deploy import sizing
from deploy.config import DeployConfig
from deploy.image import IMAGE_CONTEXT
from deploy.services import Service, services
from deploy.stacks import acknowledge
from deploy.stacks.backlog_scaling import backlog_policy
from deploy.stacks.data import DataStack
from deploy.stacks.messaging import MessagingStack

ROOT = Path(__file__).resolve().parents[2]
API_PORT = 8000


def log_group_name(prefix: str, service: str) -> str:
    """Fixed names, so the observability stack's metric filters find them."""
    return f"/{prefix}/{service}"


def task_size(service: Service) -> sizing.TaskSize:
    kind = "worker" if service.name.startswith("worker-") else service.name
    return sizing.TASK_SIZES[kind]


class ComputeStack(Stack):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: DeployConfig,
        resources: Resources,
        data: DataStack,
        messaging: MessagingStack,
        **kwargs: Any,
    ):
        super().__init__(scope, id, **kwargs)
        self.config = config
        self.resources = resources
        self.data = data
        self.messaging = messaging
        self.prefix = resources.prefix
        # The table, queues and topic by their declared names, not by export: the
        # stateful stacks stay free to change without the compute stack holding their
        # outputs, and a policy names the same ARN the declaration does.
        self.add_stack_dependency(data)
        self.add_stack_dependency(messaging)
        self.table = dynamodb.Table.from_table_attributes(
            self,
            "Table",
            table_name=resources.table.name,
            global_indexes=[i.name for i in resources.table.indexes],
        )
        self.queues: dict[str, sqs.IQueue] = {
            q.name: sqs.Queue.from_queue_attributes(
                self,
                f"Queue-{q.name}",
                queue_arn=self.arn("sqs", q.name),
                queue_name=q.name,
            )
            for q in resources.queues
        }
        self.topic = sns.Topic.from_topic_arn(
            self, "EventsTopic", self.arn("sns", resources.events_topic.name)
        )
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            max_azs=2,
            nat_gateways=1,
            subnet_configuration=[
                ec2.SubnetConfiguration(
                    name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24
                ),
                ec2.SubnetConfiguration(
                    name="private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=22
                ),
            ],
        )
        self.vpc.add_flow_log("FlowLog")
        self.cluster = ecs.Cluster(
            self,
            "Cluster",
            cluster_name=self.prefix,
            vpc=self.vpc,
            container_insights_v2=ecs.ContainerInsights.ENABLED,
        )
        self.image = ecs.ContainerImage.from_asset(
            str(ROOT),
            file="Dockerfile",
            exclude=IMAGE_CONTEXT,
            ignore_mode=IgnoreMode.DOCKER,
            platform=ecr_assets.Platform.LINUX_AMD64,
        )
        self.services: dict[str, ecs.FargateService] = {}
        self.functions: dict[str, lambda_.Function] = {}
        self.roles: dict[str, iam.IRole] = {}
        self.load_balancer: elbv2.ApplicationLoadBalancer | None = None
        self.target_group: elbv2.ApplicationTargetGroup | None = None
        for service in services(resources):
            if config.compute == "lambda" and service.lambda_handler:
                self._function(service)
            else:
                self._fargate(service)

    @staticmethod
    def arn(service: str, name: str) -> str:
        return f"arn:{Aws.PARTITION}:{service}:{Aws.REGION}:{Aws.ACCOUNT_ID}:{name}"

    # --- what every service gets ----------------------------------------------------------

    def service_environment(self, service: Service) -> dict[str, str]:
        env = {
            "AWS_DEFAULT_REGION": Aws.REGION,
            "HERALD_RESOURCE_PREFIX": self.prefix,
            "HERALD_SANDBOX": "false",
            "HERALD_VISIBILITY_TIMEOUT_SECONDS": str(self.config.visibility_timeout_seconds),
            "HERALD_MAX_RECEIVES": str(self.config.max_receives),
            # Long polls at SQS's longest: an idle consumer costs 3 receives a minute.
            "HERALD_WAIT_TIME_SECONDS": "20",
        }
        if self.config.public_base_url:
            url = self.config.public_base_url.rstrip("/")
            env["HERALD_PUBLIC_BASE_URL"] = url
            env["HERALD_TWILIO_STATUS_CALLBACK_URL"] = f"{url}/webhooks/twilio"
        if service.channel:
            env["HERALD_WORKER_CHANNEL"] = service.channel
        return env

    def grant(self, service: Service, role: iam.IGrantable) -> None:
        """Exactly what `deploy.services` lists for the service, nothing more."""
        queues = self.queues
        self.table.grant_read_write_data(role)
        if service.name == "api":
            self.table.grant(role, "dynamodb:DescribeTable")  # GET /health
        for name in service.consumes:
            queues[name].grant_consume_messages(role)
        for name in service.sends_to:
            queues[name].grant_send_messages(role)
        for name in service.reads_depth_of:
            queues[name].grant(role, "sqs:GetQueueAttributes", "sqs:GetQueueUrl")
        topic = self.topic
        if service.publishes or service.name == "api":
            # CreateTopic on the existing topic is how a process learns its ARN.
            topic.grant_publish(role)
            role.grant_principal.add_to_principal_policy(
                iam.PolicyStatement(
                    actions=["sns:CreateTopic", "sns:GetTopicAttributes"],
                    resources=[topic.topic_arn],
                )
            )
        arn = f"arn:{Aws.PARTITION}:sns:{Aws.REGION}:{Aws.ACCOUNT_ID}"
        endpoints = f"{arn}:endpoint/*/{self.prefix}-*/*"
        if service.push_endpoints == "register":
            role.grant_principal.add_to_principal_policy(
                iam.PolicyStatement(
                    actions=[
                        "sns:CreatePlatformEndpoint",
                        "sns:SetEndpointAttributes",
                        "sns:GetEndpointAttributes",
                        "sns:DeleteEndpoint",
                    ],
                    resources=[f"{arn}:app/*/{self.prefix}-*", endpoints],
                )
            )
            role.grant_principal.add_to_principal_policy(
                iam.PolicyStatement(actions=["sns:ListPlatformApplications"], resources=["*"])
            )
        if service.push_endpoints == "publish":
            role.grant_principal.add_to_principal_policy(
                iam.PolicyStatement(actions=["sns:Publish"], resources=[endpoints])
            )

    def log_group(self, service: Service) -> logs.LogGroup:
        return logs.LogGroup(
            self,
            f"Logs-{service.name}",
            log_group_name=log_group_name(self.prefix, service.name),
            retention=logs.RetentionDays.ONE_MONTH,
            removal_policy=RemovalPolicy.DESTROY,
        )

    # --- Fargate ---------------------------------------------------------------------------

    def _fargate(self, service: Service) -> None:
        size = task_size(service)
        task = ecs.FargateTaskDefinition(
            self,
            f"Task-{service.name}",
            cpu=int(size.vcpu * 1024),
            memory_limit_mib=int(size.memory_gb * 1024),
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ecs.CpuArchitecture.X86_64,
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
        )
        secrets = {
            variable: (
                ecs.Secret.from_secrets_manager(self.data.secrets[secret], key)
                if key
                else ecs.Secret.from_secrets_manager(self.data.secrets[secret])
            )
            for variable, (secret, key) in service.secrets
        }
        container = task.add_container(
            service.name,
            image=self.image,
            command=list(service.command),
            environment=self.service_environment(service),
            secrets=secrets,
            logging=ecs.LogDriver.aws_logs(
                stream_prefix=service.name, log_group=self.log_group(service)
            ),
            stop_timeout=Duration.seconds(30),
        )
        self.grant(service, task.task_role)
        self.roles[service.name] = task.task_role
        self._acknowledge_task(service, task)
        low, high = self.config.bounds_of(service.name)
        fargate = ecs.FargateService(
            self,
            f"Service-{service.name}",
            service_name=f"{self.prefix}-{service.name}",
            cluster=self.cluster,
            task_definition=task,
            desired_count=low,
            min_healthy_percent=100,
            circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True),
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
        )
        self.services[service.name] = fargate
        if service.scaling == "api":
            container.add_port_mappings(ecs.PortMapping(container_port=API_PORT))
            self._load_balancer(fargate, low, high)
        elif service.scaling == "backlog":
            self._scale_on_backlog(service, fargate, low, high)

    def _load_balancer(self, fargate: ecs.FargateService, low: int, high: int) -> None:
        alb = elbv2.ApplicationLoadBalancer(
            self, "Alb", vpc=self.vpc, internet_facing=True, drop_invalid_header_fields=True
        )
        if self.config.certificate_arn:
            listener = alb.add_listener(
                "Https",
                port=443,
                certificates=[elbv2.ListenerCertificate(self.config.certificate_arn)],
                ssl_policy=elbv2.SslPolicy.RECOMMENDED_TLS,
            )
            alb.add_redirect()
        else:
            listener = alb.add_listener("Http", port=80)
        self.target_group = listener.add_targets(
            "Api",
            port=API_PORT,
            protocol=elbv2.ApplicationProtocol.HTTP,
            targets=[fargate],
            health_check=elbv2.HealthCheck(
                path="/health", healthy_http_codes="200", interval=Duration.seconds(15)
            ),
            deregistration_delay=Duration.seconds(30),
        )
        self.load_balancer = alb
        acknowledge(
            alb,
            "AwsSolutions-ELB2",
            "The API logs every request it serves as JSON in CloudWatch Logs; ALB access "
            "logs need an S3 bucket of the account's logging setup, to enable where required.",
        )
        acknowledge(
            alb,
            "AwsSolutions-EC23",
            "The load balancer is the public API and accepts any client address; the "
            "tasks' security group admits only the load balancer.",
        )
        scaling = fargate.auto_scale_task_count(min_capacity=low, max_capacity=high)
        scaling.scale_on_cpu_utilization(
            "Cpu", target_utilization_percent=int(sizing.TARGET_UTILISATION * 100)
        )
        scaling.scale_on_request_count(
            "Requests",
            requests_per_target=sizing.API_REQUESTS_PER_TASK_PER_MINUTE,
            target_group=self.target_group,
        )

    def _scale_on_backlog(
        self, service: Service, fargate: ecs.FargateService, low: int, high: int
    ) -> None:
        """Target tracking on visible messages ÷ running tasks (metric math)."""
        target = appscaling.ScalableTarget(
            self,
            f"Scaling-{service.name}",
            service_namespace=appscaling.ServiceNamespace.ECS,
            resource_id=f"service/{self.cluster.cluster_name}/{fargate.service_name}",
            scalable_dimension="ecs:service:DesiredCount",
            min_capacity=max(low, 1),  # the metric divides by running tasks
            max_capacity=high,
        )
        backlog_policy(
            self,
            prefix=self.prefix,
            service=service,
            cluster_name=self.cluster.cluster_name,
            service_name=fargate.service_name,
            target_id=target.scalable_target_id,
        )

    # --- Lambda ----------------------------------------------------------------------------

    def _function(self, service: Service) -> None:
        env = self.service_environment(service)
        env.pop("AWS_DEFAULT_REGION")  # Lambda sets it
        secret_env = {
            variable: [self.data.secrets[secret].secret_arn, key]
            for variable, (secret, key) in service.secrets
        }
        env["HERALD_SECRET_ENV"] = self.to_json_string(secret_env)
        function = lambda_.DockerImageFunction(
            self,
            f"Function-{service.name}",
            function_name=f"{self.prefix}-{service.name}",
            code=lambda_.DockerImageCode.from_image_asset(
                str(ROOT),
                file="deploy/lambda.Dockerfile",
                cmd=[service.lambda_handler or ""],
                exclude=IMAGE_CONTEXT,
                ignore_mode=IgnoreMode.DOCKER,
                platform=ecr_assets.Platform.LINUX_AMD64,
            ),
            memory_size=512,
            # At most the queues' visibility timeout, as SQS event sources require.
            timeout=Duration.seconds(self.config.visibility_timeout_seconds),
            environment=env,
            logging_format=lambda_.LoggingFormat.JSON,
            log_group=self.log_group(service),
        )
        for secret in {secret for _, (secret, _key) in service.secrets}:
            self.data.secrets[secret].grant_read(function)
        self.grant(service, function)
        for name in service.consumes:
            function.add_event_source(
                event_sources.SqsEventSource(
                    self.queues[name],
                    batch_size=10,
                    report_batch_item_failures=True,
                    max_concurrency=max(2, self.config.lambda_max_concurrency),
                )
            )
        self.functions[service.name] = function
        if function.role is not None:
            self.roles[service.name] = function.role
            self._acknowledge_role_wildcards(service, function.role)
            acknowledge(
                function.role,
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                "AWSLambdaBasicExecutionRole]",
                "AWS's basic execution policy lets the function write its own logs, nothing more.",
            )

    # --- cdk-nag ---------------------------------------------------------------------------

    def _acknowledge_role_wildcards(self, service: Service, role: IConstruct) -> None:
        acknowledge(
            role,
            f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:dynamodb:<AWS::Region>:"
            f"<AWS::AccountId>:table/{self.resources.table.name}/index/*]",
            "Herald's own table's indexes (listings, the reconciler's walk): a query names "
            "its index, and every index of this one table is Herald's.",
        )
        endpoints = (
            f"Resource::arn:<AWS::Partition>:sns:<AWS::Region>:<AWS::AccountId>:endpoint/*/"
            f"{self.prefix}-*/*"
        )
        if service.push_endpoints:
            acknowledge(
                role,
                f"AwsSolutions-IAM5[{endpoints}]",
                "Push endpoints are created per device at run time, under this stack's "
                "platform applications only (<prefix>-fcm, <prefix>-apns).",
            )
        if service.push_endpoints == "register":
            acknowledge(
                role,
                "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:sns:<AWS::Region>:"
                f"<AWS::AccountId>:app/*/{self.prefix}-*]",
                "The platform applications are created by the operator with the provider's "
                "credentials (FCM, APNs), under this stack's prefix.",
            )
            acknowledge(
                role,
                "AwsSolutions-IAM5[Resource::*]",
                "sns:ListPlatformApplications has no resource-level permission; the API "
                "looks its platform applications up by name.",
            )

    def _acknowledge_task(self, service: Service, task: ecs.FargateTaskDefinition) -> None:
        self._acknowledge_role_wildcards(service, task.task_role)
        acknowledge(
            task,
            "AwsSolutions-ECS2",
            "Only non-secret settings are environment variables (prefix, region, "
            "timeouts); every credential comes from Secrets Manager (`secrets`).",
        )
        if task.execution_role is not None:
            acknowledge(
                task.execution_role,
                "AwsSolutions-IAM5[Resource::*]",
                "ecr:GetAuthorizationToken, which ECS needs to pull the image, has no "
                "resource-level permission.",
            )
