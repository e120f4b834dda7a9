//! The AWS emulator test bed: moto in server mode plus the CloudWatch CBOR
//! bridge, per-test accounts, seeding of the article's system, and helpers
//! that play the other actors (the ECS scheduler, an operator, an
//! autoscaler).
//!
//! # Isolation
//!
//! One moto serves the whole test binary; every test gets its own moto
//! *account* (an IAM user created in a fresh account id, whose access key
//! moto maps back to that account). Tests then run in parallel under
//! `cargo test` without seeing each other's resources, and no test needs a
//! global reset (which would wipe the others' state mid-test). The account
//! rides in the credentials, so the adapter under test is configured
//! exactly as in production: only its endpoints differ.
//!
//! # Lifetime of the emulator processes
//!
//! The processes read a pipe on stdin that this process never writes to.
//! When the test binary exits (however it exits), the pipe closes and they
//! exit too (see `tests/emulator/moto_server.py`). A dedicated
//! [`Emulator`] also kills its processes on drop.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_ecs::config::{Credentials, SharedCredentialsProvider};
use aws_types::service_config::{LoadServiceConfig, ServiceConfigKey};

use ballast::cloud::aws::{AwsCloud, AwsOptions};
use ballast::desired::{GroupId, ServiceId, TargetGroupId, TargetGroupRef};
use ballast::metrics::Metrics;

/// The region every seeded system lives in.
pub const REGION: &str = "us-east-1";
pub const CLUSTER: &str = "appCluster";
pub const SERVICE: &str = "appService";
pub const GROUP: &str = "ecsAutoScalingGroup";
pub const TASK_FAMILY: &str = "appTaskDefinition";
pub const CONTAINER: &str = "appContainer";
pub const FRONTEND: &str = "frontendTargetGroup";
pub const BACKEND: &str = "backendTargetGroup";
pub const LOAD_BALANCER: &str = "internalLoadBalancer";
/// An AMI moto ships with.
const AMI: &str = "ami-12c6146b";
/// `startedBy` of the tasks the test plays the scheduler for.
pub const STARTED_BY: &str = "ecs-svc/ballast-test";

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn venv_python() -> PathBuf {
    let python = repo_root().join(".venv/bin/python");
    let moto = repo_root().join(".venv/bin/moto_server");
    if !python.exists() || !moto.exists() {
        panic!(
            "the AWS emulator is not installed: {} is missing.\n\
             Run `scripts/emulator-setup.sh` at the repository root (creates .venv with \
             moto[server] and cbor2), then run the tests again.",
            moto.display()
        );
    }
    python
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free local port")
}

fn log_path(name: &str, port: u16) -> PathBuf {
    std::env::temp_dir().join(format!("ballast-{name}-{}-{port}.log", std::process::id()))
}

fn spawn(script: &str, args: &[String], log: &Path) -> Child {
    let out = std::fs::File::create(log).expect("emulator log file");
    let err = out.try_clone().unwrap();
    Command::new(venv_python())
        .arg(repo_root().join("tests/emulator").join(script))
        .args(args)
        // The watchdog pipe: never written, closed when we exit.
        .stdin(Stdio::piped())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {script}: {e}"))
}

/// A minimal blocking HTTP/1.0 exchange with a loopback server, for start-up
/// checks that run before (or outside) any async runtime.
fn raw_http(port: u16, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    let status = resp.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((status, body))
}

fn wait_ready(child: &mut Child, port: u16, path: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok((status, _)) = raw_http(port, "GET", path, "")
            && status > 0
        {
            return;
        }
        if let Ok(Some(exit)) = child.try_wait() {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            panic!("emulator process exited ({exit}) during start-up:\n{log}");
        }
        if Instant::now() > deadline {
            panic!("emulator on port {port} not ready after 60 s; see {}", log.display());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// An ELBv2 target, always with its port.
fn description(id: &str, port: u16) -> aws_sdk_elasticloadbalancingv2::types::TargetDescription {
    aws_sdk_elasticloadbalancingv2::types::TargetDescription::builder().id(id).port(i32::from(port)).build()
}

/// A running moto plus CloudWatch bridge.
pub struct Emulator {
    pub moto_port: u16,
    pub bridge_port: u16,
    procs: Mutex<(Option<Child>, Option<Child>)>,
}

impl Emulator {
    /// The emulator shared by every test of this binary, started on first use.
    pub fn shared() -> &'static Emulator {
        static SHARED: OnceLock<Emulator> = OnceLock::new();
        SHARED.get_or_init(Emulator::start)
    }

    /// A dedicated emulator (for tests that stop it). Killed on drop.
    pub fn start() -> Emulator {
        let e = Emulator { moto_port: free_port(), bridge_port: free_port(), procs: Mutex::new((None, None)) };
        e.start_processes();
        e
    }

    fn start_processes(&self) {
        let log = log_path("moto", self.moto_port);
        let mut moto =
            spawn("moto_server.py", &["-H".into(), "127.0.0.1".into(), "-p".into(), self.moto_port.to_string()], &log);
        wait_ready(&mut moto, self.moto_port, "/moto-api/", &log);
        // moto moves a task one lifecycle step per DescribeTasks unless told
        // to hold it; the tests play the scheduler instead.
        let (status, body) = raw_http(
            self.moto_port,
            "POST",
            "/moto-api/state-manager/set-transition",
            r#"{"model_name":"ecs::task","transition":{"progression":"manual","times":1000000}}"#,
        )
        .expect("configure moto's state manager");
        assert!(status < 300, "set-transition: {status} {body}");
        self.procs.lock().unwrap().0 = Some(moto);

        let log = log_path("cloudwatch-bridge", self.bridge_port);
        let mut bridge = spawn("cloudwatch_bridge.py", &[self.bridge_port.to_string(), self.moto_url()], &log);
        wait_ready(&mut bridge, self.bridge_port, "/", &log);
        self.procs.lock().unwrap().1 = Some(bridge);
    }

    /// Kill moto and the bridge: every AWS call now fails to connect.
    pub fn stop(&self) {
        let mut procs = self.procs.lock().unwrap();
        for c in [procs.0.take(), procs.1.take()].into_iter().flatten() {
            let mut c = c;
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start both again on the same ports. moto's state starts empty (and
    /// unknown access keys then map to moto's default account).
    pub fn restart(&self) {
        self.stop();
        self.start_processes();
        self.warm_up_ecs();
    }

    /// A fresh moto loads each service's backend on its first request,
    /// which takes seconds on a loaded machine: longer than the short
    /// attempt timeouts the recovery tests use. One ECS call loads it.
    fn warm_up_ecs(&self) {
        let mut s = TcpStream::connect(("127.0.0.1", self.moto_port)).expect("moto is up");
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let body = "{}";
        write!(
            s,
            "POST / HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/x-amz-json-1.1\r\n\
             X-Amz-Target: AmazonEC2ContainerServiceV20141113.ListClusters\r\n\
             Authorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-2/ecs/aws4_request, \
             SignedHeaders=host, Signature=0\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut resp = String::new();
        let _ = s.read_to_string(&mut resp);
        assert!(resp.starts_with("HTTP/1.") && resp.contains(" 200 "), "warming up moto's ECS: {resp}");
    }

    pub fn moto_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.moto_port)
    }

    pub fn bridge_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.bridge_port)
    }

    /// A fresh account of its own on this emulator.
    pub async fn account(&self) -> Account {
        static NEXT: AtomicU64 = AtomicU64::new(200_000_000_001);
        let id = format!("{:012}", NEXT.fetch_add(1, Ordering::Relaxed));
        let http = reqwest::Client::new();
        let query = |params: &[(&str, &str)]| {
            http.post(self.moto_url())
                .header("x-moto-account-id", &id)
                .header(
                    "Authorization",
                    "AWS4-HMAC-SHA256 Credential=AKIDSETUP/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0",
                )
                .form(params)
        };
        let r = query(&[("Action", "CreateUser"), ("UserName", "ballast"), ("Version", "2010-05-08")])
            .send()
            .await
            .expect("IAM CreateUser");
        assert!(r.status().is_success(), "CreateUser: {}", r.text().await.unwrap());
        let xml = query(&[("Action", "CreateAccessKey"), ("UserName", "ballast"), ("Version", "2010-05-08")])
            .send()
            .await
            .expect("IAM CreateAccessKey")
            .text()
            .await
            .unwrap();
        Account {
            id: id.clone(),
            access_key: xml_value(&xml, "AccessKeyId").expect("AccessKeyId"),
            secret_key: xml_value(&xml, "SecretAccessKey").expect("SecretAccessKey"),
            moto_url: self.moto_url(),
            bridge_url: self.bridge_url(),
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The first `<tag>…</tag>` of an XML document.
pub fn xml_value(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(xml[start..end].trim().to_string())
}

/// Every `<tag>…</tag>` of an XML document.
pub fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        rest = &rest[i + open.len()..];
        let Some(j) = rest.find(&close) else { break };
        out.push(rest[..j].trim().to_string());
        rest = &rest[j..];
    }
    out
}

/// Sends CloudWatch (only) to the CBOR bridge; everything else uses the
/// config's endpoint URL (moto).
#[derive(Debug)]
struct CloudWatchViaBridge(String);

impl LoadServiceConfig for CloudWatchViaBridge {
    fn load_config(&self, key: ServiceConfigKey<'_>) -> Option<String> {
        (key.service_id() == "CloudWatch" && key.env() == "AWS_ENDPOINT_URL").then(|| self.0.clone())
    }
}

/// One test's moto account.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: String,
    pub access_key: String,
    pub secret_key: String,
    pub moto_url: String,
    pub bridge_url: String,
}

/// Adapter options for tests: quick retries, the standard rate limits.
pub fn test_options() -> AwsOptions {
    AwsOptions {
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        ..AwsOptions::default()
    }
}

impl Account {
    /// SDK settings for this account: moto for everything, the bridge for
    /// CloudWatch. `endpoint` replaces moto's URL (e.g. a fault proxy).
    pub fn sdk_config_via(&self, endpoint: &str, cloudwatch: &str) -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                &self.access_key,
                &self.secret_key,
                None,
                None,
                "moto-test-account",
            )))
            .endpoint_url(endpoint)
            .service_config(CloudWatchViaBridge(cloudwatch.to_string()))
            .build()
    }

    pub fn sdk_config(&self) -> SdkConfig {
        self.sdk_config_via(&self.moto_url, &self.bridge_url)
    }

    /// The adapter under test, on this account.
    pub fn cloud(&self, options: AwsOptions) -> AwsCloud {
        AwsCloud::new(&self.sdk_config(), Arc::new(Metrics::new()), options)
    }

    /// A lease table as deploy/ creates it (`ballast run --lease-table`):
    /// partition key `name`, a string, billed on demand.
    pub async fn create_lease_table(&self, table: &str) {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        };
        let client = aws_sdk_dynamodb::Client::new(&self.sdk_config());
        let name = AttributeDefinition::builder().attribute_name("name").attribute_type(ScalarAttributeType::S);
        let key = KeySchemaElement::builder().attribute_name("name").key_type(KeyType::Hash);
        let req = client.create_table();
        req.table_name(table)
            .attribute_definitions(name.build().expect("a complete attribute definition"))
            .key_schema(key.build().expect("a complete key schema"))
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
            .expect("DynamoDB CreateTable");
    }

    /// Plain SDK clients for seeding and for playing other actors (their
    /// calls are not counted by the adapter).
    pub fn actors(&self) -> Actors {
        let c = self.sdk_config();
        Actors {
            ecs: aws_sdk_ecs::Client::new(&c),
            elbv2: aws_sdk_elasticloadbalancingv2::Client::new(&c),
            autoscaling: aws_sdk_autoscaling::Client::new(&c),
            cloudwatch: aws_sdk_cloudwatch::Client::new(&c),
            appscaling: aws_sdk_applicationautoscaling::Client::new(&c),
            account: self.clone(),
            http: reqwest::Client::new(),
        }
    }
}

/// What [`Actors::seed`] created: the article's system.
#[derive(Debug, Clone)]
pub struct System {
    pub vpc_id: String,
    /// The two private subnets the group spans.
    pub subnets: Vec<String>,
    /// A third subnet the group does not use (for subnet changes).
    pub spare_subnet: String,
    /// EC2 instances of the group, sorted.
    pub instances: Vec<String>,
    pub task_definition_arn: String,
    pub load_balancer_arn: String,
    pub frontend_arn: String,
    pub backend_arn: String,
    /// Tasks started for the service, sorted.
    pub tasks: Vec<String>,
}

impl System {
    pub fn service_id(&self) -> ServiceId {
        service_id(SERVICE)
    }
    pub fn group_id(&self) -> GroupId {
        GroupId { region: REGION.into(), name: GROUP.into() }
    }
    pub fn target_group(name: &str) -> TargetGroupId {
        TargetGroupId { region: REGION.into(), target_group: TargetGroupRef::Name(name.into()) }
    }
}

pub fn service_id(name: &str) -> ServiceId {
    ServiceId { region: REGION.into(), cluster: CLUSTER.into(), service: name.into() }
}

/// SDK clients of one account, for everything that is not the adapter.
pub struct Actors {
    pub ecs: aws_sdk_ecs::Client,
    pub elbv2: aws_sdk_elasticloadbalancingv2::Client,
    pub autoscaling: aws_sdk_autoscaling::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub appscaling: aws_sdk_applicationautoscaling::Client,
    account: Account,
    http: reqwest::Client,
}

impl Actors {
    /// An EC2 query API call (moto serves EC2 on the same endpoint; the
    /// crate deliberately has no EC2 SDK).
    pub async fn ec2(&self, params: &[(&str, &str)]) -> String {
        let mut form: Vec<(&str, &str)> = vec![("Version", "2016-11-15")];
        form.extend_from_slice(params);
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential={}/20260101/{REGION}/ec2/aws4_request, SignedHeaders=host, Signature=0",
            self.account.access_key
        );
        let resp = self
            .http
            .post(&self.account.moto_url)
            .header("Authorization", auth)
            .form(&form)
            .send()
            .await
            .expect("EC2 query call");
        let status = resp.status();
        let body = resp.text().await.unwrap();
        assert!(status.is_success(), "EC2 {params:?}: {status} {body}");
        body
    }

    /// Seed the article's system: VPC and subnets, launch template, the
    /// group with two instances registered in the cluster, the task
    /// definition, the service (without loadBalancers: ballast manages the
    /// targets), the internal NLB with its two target groups and
    /// listeners, and `tasks` running tasks of the service.
    pub async fn seed(&self, tasks: u32) -> System {
        let vpc = self.ec2(&[("Action", "CreateVpc"), ("CidrBlock", "10.0.0.0/16")]).await;
        let vpc_id = xml_value(&vpc, "vpcId").expect("vpcId");
        let mut subnets = Vec::new();
        for (cidr, zone) in
            [("10.0.2.0/24", "us-east-1a"), ("10.0.3.0/24", "us-east-1b"), ("10.0.4.0/24", "us-east-1c")]
        {
            let s = self
                .ec2(&[("Action", "CreateSubnet"), ("VpcId", &vpc_id), ("CidrBlock", cidr), ("AvailabilityZone", zone)])
                .await;
            subnets.push(xml_value(&s, "subnetId").expect("subnetId"));
        }
        let spare_subnet = subnets.pop().unwrap();
        self.ec2(&[
            ("Action", "CreateLaunchTemplate"),
            ("LaunchTemplateName", "ecsLaunchTemplate"),
            ("LaunchTemplateData.ImageId", AMI),
            ("LaunchTemplateData.InstanceType", "t2.micro"),
        ])
        .await;

        let req = self.autoscaling.create_auto_scaling_group();
        req.auto_scaling_group_name(GROUP)
            .launch_template(
                aws_sdk_autoscaling::types::LaunchTemplateSpecification::builder()
                    .launch_template_name("ecsLaunchTemplate")
                    .version("$Latest")
                    .build(),
            )
            .min_size(1)
            .max_size(10)
            .desired_capacity(2)
            .vpc_zone_identifier(subnets.join(","))
            .send()
            .await
            .expect("CreateAutoScalingGroup");
        let instances = self.group_instances().await;
        assert_eq!(instances.len(), 2, "moto launches the desired capacity");

        let req = self.ecs.create_cluster();
        req.cluster_name(CLUSTER).send().await.expect("CreateCluster");
        for id in &instances {
            self.register_container_instance(id).await;
        }

        let pm = |p: i32| {
            aws_sdk_ecs::types::PortMapping::builder()
                .container_port(p)
                .host_port(p)
                .protocol(aws_sdk_ecs::types::TransportProtocol::Tcp)
                .build()
        };
        let req = self.ecs.register_task_definition();
        let td = req
            .family(TASK_FAMILY)
            .network_mode(aws_sdk_ecs::types::NetworkMode::Bridge)
            .container_definitions(
                aws_sdk_ecs::types::ContainerDefinition::builder()
                    .name(CONTAINER)
                    .image("nginx")
                    .memory(512)
                    .essential(true)
                    .port_mappings(pm(80))
                    .port_mappings(pm(8000))
                    .build(),
            )
            .send()
            .await
            .expect("RegisterTaskDefinition");
        let task_definition_arn = td.task_definition().and_then(|t| t.task_definition_arn()).unwrap().to_string();
        self.create_service(SERVICE, &task_definition_arn, 2).await;

        let req = self.elbv2.create_load_balancer();
        let lb = req
            .name(LOAD_BALANCER)
            .scheme(aws_sdk_elasticloadbalancingv2::types::LoadBalancerSchemeEnum::Internal)
            .r#type(aws_sdk_elasticloadbalancingv2::types::LoadBalancerTypeEnum::Network)
            .set_subnets(Some(subnets.clone()))
            .send()
            .await
            .expect("CreateLoadBalancer");
        let load_balancer_arn = lb.load_balancers()[0].load_balancer_arn().unwrap().to_string();
        let frontend_arn = self.create_target_group(FRONTEND, 80, &vpc_id).await;
        let backend_arn = self.create_target_group(BACKEND, 8000, &vpc_id).await;
        for (port, tg) in [(80, &frontend_arn), (8000, &backend_arn)] {
            let req = self.elbv2.create_listener();
            req.load_balancer_arn(&load_balancer_arn)
                .protocol(aws_sdk_elasticloadbalancingv2::types::ProtocolEnum::Tcp)
                .port(port)
                .default_actions(
                    aws_sdk_elasticloadbalancingv2::types::Action::builder()
                        .r#type(aws_sdk_elasticloadbalancingv2::types::ActionTypeEnum::Forward)
                        .target_group_arn(tg)
                        .build(),
                )
                .send()
                .await
                .expect("CreateListener");
        }

        let mut tasks = self.start_tasks(SERVICE, tasks).await;
        tasks.sort();
        // The running system as ballast keeps it: its serving tasks are
        // protected from scale-in (issue 15).
        self.protect_tasks(&tasks).await;
        System {
            vpc_id,
            subnets,
            spare_subnet,
            instances,
            task_definition_arn,
            load_balancer_arn,
            frontend_arn,
            backend_arn,
            tasks,
        }
    }

    pub async fn register_container_instance(&self, instance_id: &str) -> String {
        let req = self.ecs.register_container_instance();
        let ci = req
            .cluster(CLUSTER)
            .instance_identity_document(format!(r#"{{"instanceId":"{instance_id}"}}"#))
            .send()
            .await
            .expect("RegisterContainerInstance");
        ci.container_instance().and_then(|c| c.container_instance_arn()).unwrap().to_string()
    }

    pub async fn create_service(&self, name: &str, task_definition: &str, desired: i32) {
        self.create_ec2_service(name, task_definition, desired, None).await;
    }

    /// A service that registers its tasks' port 80 in `target_group_arn`
    /// itself (its own ECS `loadBalancers`).
    pub async fn create_service_in_target_group(
        &self,
        name: &str,
        task_definition: &str,
        desired: i32,
        target_group_arn: &str,
    ) {
        let lb = aws_sdk_ecs::types::LoadBalancer::builder()
            .target_group_arn(target_group_arn)
            .container_name(CONTAINER)
            .container_port(80)
            .build();
        self.create_ec2_service(name, task_definition, desired, Some(vec![lb])).await;
    }

    async fn create_ec2_service(
        &self,
        name: &str,
        task_definition: &str,
        desired: i32,
        load_balancers: Option<Vec<aws_sdk_ecs::types::LoadBalancer>>,
    ) {
        let req = self.ecs.create_service();
        req.cluster(CLUSTER)
            .service_name(name)
            .task_definition(task_definition)
            .desired_count(desired)
            .launch_type(aws_sdk_ecs::types::LaunchType::Ec2)
            .set_load_balancers(load_balancers)
            .send()
            .await
            .expect("CreateService");
    }

    pub async fn create_target_group(&self, name: &str, port: i32, vpc_id: &str) -> String {
        let req = self.elbv2.create_target_group();
        let tg = req
            .name(name)
            .protocol(aws_sdk_elasticloadbalancingv2::types::ProtocolEnum::Tcp)
            .port(port)
            .vpc_id(vpc_id)
            .target_type(aws_sdk_elasticloadbalancingv2::types::TargetTypeEnum::Instance)
            .send()
            .await
            .expect("CreateTargetGroup");
        tg.target_groups()[0].target_group_arn().unwrap().to_string()
    }

    /// The group's instance ids, sorted.
    pub async fn group_instances(&self) -> Vec<String> {
        let req = self.autoscaling.describe_auto_scaling_groups();
        let out = req.auto_scaling_group_names(GROUP).send().await.expect("DescribeAutoScalingGroups");
        let mut ids: Vec<String> = out.auto_scaling_groups()[0]
            .instances()
            .iter()
            .filter_map(|i| i.instance_id().map(str::to_string))
            .collect();
        ids.sort();
        ids
    }

    // ----- playing the ECS scheduler -----

    /// Start `n` tasks of `service` as ECS would (group `service:NAME`).
    pub async fn start_tasks(&self, service: &str, n: u32) -> Vec<String> {
        if n == 0 {
            return Vec::new();
        }
        let req = self.ecs.run_task();
        let out = req
            .cluster(CLUSTER)
            .task_definition(TASK_FAMILY)
            .count(n as i32)
            .group(format!("service:{service}"))
            .started_by(STARTED_BY)
            .launch_type(aws_sdk_ecs::types::LaunchType::Ec2)
            .send()
            .await
            .expect("RunTask");
        out.tasks().iter().filter_map(|t| t.task_arn().map(str::to_string)).collect()
    }

    /// UpdateTaskProtection on `tasks` for an hour, as ballast sets it.
    pub async fn protect_tasks(&self, tasks: &[String]) {
        if tasks.is_empty() {
            return;
        }
        let req = self.ecs.update_task_protection();
        let req = req.cluster(CLUSTER).set_tasks(Some(tasks.to_vec())).protection_enabled(true).expires_in_minutes(60);
        req.send().await.expect("UpdateTaskProtection");
    }

    /// Stop a task as ECS would when scaling in or replacing it.
    pub async fn stop_task(&self, task_arn: &str) {
        let req = self.ecs.stop_task();
        req.cluster(CLUSTER).task(task_arn).reason("stopped by the test scheduler").send().await.expect("StopTask");
    }

    // ----- other actors -----

    /// Someone (a person, another tool) sets the desired count directly.
    pub async fn set_desired_count(&self, service: &str, n: u32) {
        let req = self.ecs.update_service();
        req.cluster(CLUSTER).service(service).desired_count(n as i32).send().await.expect("UpdateService");
    }

    /// Someone deregisters a target by hand.
    pub async fn deregister_target(&self, tg_arn: &str, id: &str, port: u16) {
        self.try_deregister_target(tg_arn, id, port).await.expect("DeregisterTargets");
    }

    /// The same, where the target may already be gone (ELBv2 then refuses).
    pub async fn try_deregister_target(
        &self,
        tg_arn: &str,
        id: &str,
        port: u16,
    ) -> Result<(), aws_sdk_elasticloadbalancingv2::Error> {
        let req = self.elbv2.deregister_targets().target_group_arn(tg_arn).targets(description(id, port));
        req.send().await?;
        Ok(())
    }

    /// Someone registers a target by hand.
    pub async fn register_target(&self, tg_arn: &str, id: &str, port: u16) {
        let req = self.elbv2.register_targets().target_group_arn(tg_arn).targets(description(id, port));
        req.send().await.expect("RegisterTargets");
    }

    /// Someone edits an existing alarm's threshold, keeping the rest.
    pub async fn set_alarm_threshold(&self, name: &str, threshold: f64) {
        self.edit_alarm(name, threshold, None).await;
    }

    /// Someone edits an alarm's threshold and, if given, sets its
    /// AlarmActions (e.g. an SNS topic that pages the on-call).
    pub async fn edit_alarm(&self, name: &str, threshold: f64, alarm_actions: Option<Vec<String>>) {
        let req = self.cloudwatch.describe_alarms();
        let out = req.alarm_names(name).send().await.expect("DescribeAlarms");
        let a = out.metric_alarms().first().expect("the alarm exists").clone();
        let req = self.cloudwatch.put_metric_alarm();
        req.alarm_name(name)
            .set_alarm_description(a.alarm_description().map(str::to_string))
            .set_namespace(a.namespace().map(str::to_string))
            .set_metric_name(a.metric_name().map(str::to_string))
            .set_statistic(a.statistic().cloned())
            .set_dimensions(Some(a.dimensions().to_vec()))
            .set_period(a.period())
            .set_evaluation_periods(a.evaluation_periods())
            .set_datapoints_to_alarm(a.datapoints_to_alarm())
            .set_comparison_operator(a.comparison_operator().cloned())
            .set_treat_missing_data(a.treat_missing_data().map(str::to_string))
            .set_alarm_actions(alarm_actions.or_else(|| Some(a.alarm_actions().to_vec())))
            .threshold(threshold)
            .send()
            .await
            .expect("PutMetricAlarm");
    }

    /// The alarm as CloudWatch describes it.
    pub async fn alarm(&self, name: &str) -> aws_sdk_cloudwatch::types::MetricAlarm {
        let out = self.cloudwatch.describe_alarms().alarm_names(name).send().await.expect("DescribeAlarms");
        out.metric_alarms().first().expect("the alarm exists").clone()
    }

    /// CloudWatch (here: the test) moves an alarm into a state.
    pub async fn set_alarm_state(&self, name: &str, state: aws_sdk_cloudwatch::types::StateValue) {
        let req = self.cloudwatch.set_alarm_state();
        req.alarm_name(name).state_value(state).state_reason("set by the test").send().await.expect("SetAlarmState");
    }

    /// ECS reports the service's average CPU for the minute starting at `at`.
    pub async fn put_cpu(&self, service: &str, percent: f64, at: std::time::SystemTime) {
        use aws_sdk_cloudwatch::types::StandardUnit;
        self.put_service_metric("AWS/ECS", "CPUUtilization", service, percent, StandardUnit::Percent, at).await;
    }

    /// Container Insights reports the service's running tasks for the
    /// minute starting at `at`.
    pub async fn put_running_tasks(&self, service: &str, tasks: u32, at: std::time::SystemTime) {
        use aws_sdk_cloudwatch::types::StandardUnit;
        let (namespace, name) = ("ECS/ContainerInsights", "RunningTaskCount");
        self.put_service_metric(namespace, name, service, f64::from(tasks), StandardUnit::Count, at).await;
    }

    async fn put_service_metric(
        &self,
        namespace: &str,
        name: &str,
        service: &str,
        value: f64,
        unit: aws_sdk_cloudwatch::types::StandardUnit,
        at: std::time::SystemTime,
    ) {
        use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
        let dim = |n: &str, v: &str| Dimension::builder().name(n).value(v).build();
        let datum = MetricDatum::builder()
            .metric_name(name)
            .dimensions(dim("ClusterName", CLUSTER))
            .dimensions(dim("ServiceName", service))
            .timestamp(at.into())
            .value(value)
            .unit(unit)
            .build();
        let req = self.cloudwatch.put_metric_data();
        req.namespace(namespace).metric_data(datum).send().await.expect("PutMetricData");
    }

    /// Someone (or ECS managed scaling) changes the group's capacity.
    pub async fn set_capacity(&self, n: u32) {
        let req = self.autoscaling.set_desired_capacity();
        req.auto_scaling_group_name(GROUP).desired_capacity(n as i32).send().await.expect("SetDesiredCapacity");
    }

    /// ECS capacity-provider managed scaling takes over the group: ECS
    /// tags the groups it scales `AmazonECSManaged`.
    pub async fn tag_group_as_ecs_managed(&self) {
        let tag = aws_sdk_autoscaling::types::Tag::builder()
            .resource_id(GROUP)
            .resource_type("auto-scaling-group")
            .key("AmazonECSManaged")
            .value("")
            .propagate_at_launch(false)
            .build();
        self.autoscaling.create_or_update_tags().tags(tag).send().await.expect("CreateOrUpdateTags");
    }

    /// Application Auto Scaling takes over the service's desired count.
    pub async fn add_scalable_target(&self, service: &str) {
        let req = self.appscaling.register_scalable_target();
        req.service_namespace(aws_sdk_applicationautoscaling::types::ServiceNamespace::Ecs)
            .resource_id(format!("service/{CLUSTER}/{service}"))
            .scalable_dimension(aws_sdk_applicationautoscaling::types::ScalableDimension::EcsServiceDesiredCount)
            .min_capacity(1)
            .max_capacity(10)
            .send()
            .await
            .expect("RegisterScalableTarget");
    }
}
