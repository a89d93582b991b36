//! The Kubernetes manifests (`deploy/k8s`), rendered by `kubectl kustomize` as a cluster would get
//! them, keep their invariants: every long-running container has readiness and liveness probes,
//! requests and limits; the relay and the sealer run two replicas (one active, one standing by);
//! every secret comes from the Secret and none sits in a ConfigMap; the api has its Service, HPA
//! and PDB; the migrate Job runs `migrate`; every projection has a Deployment of its own.

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;

/// Environment variables that hold secrets (credentials in URLs included).
const SECRETS: &[&str] = &[
    "DATABASE_URL",
    "AMQP_URL",
    "REDIS_URL",
    "JWT_SECRET",
    "DATA_KEY",
    "SMTP_URL",
    "NEW_DATA_KEY",
    "ADMIN_PASSWORD",
];

fn render(dir: &str) -> Vec<Value> {
    let path = format!("{}/deploy/k8s/{dir}", env!("CARGO_MANIFEST_DIR"));
    let output = Command::new("kubectl")
        .args(["kustomize", &path])
        .output()
        .unwrap_or_else(|e| panic!("kubectl runs ({e}); scripts/test installs it when missing"));
    assert!(
        output.status.success(),
        "kubectl kustomize {dir}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).expect("UTF-8");
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| {
            let value: serde_yaml::Value =
                serde::Deserialize::deserialize(doc).expect("a YAML document");
            serde_json::to_value(value).expect("JSON-shaped")
        })
        .collect()
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn named<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn containers(workload: &Value) -> Vec<&Value> {
    workload["spec"]["template"]["spec"]["containers"]
        .as_array()
        .map(|c| c.iter().collect())
        .unwrap_or_default()
}

fn check(docs: &[Value]) {
    let deployments = of_kind(docs, "Deployment");
    assert!(!deployments.is_empty());
    for workload in deployments.iter().chain(of_kind(docs, "Job").iter()) {
        let name = workload["metadata"]["name"].as_str().unwrap_or("?");
        let is_job = workload["kind"] == "Job";
        let list = containers(workload);
        assert!(!list.is_empty(), "{name} has containers");
        for c in list {
            for bound in ["requests", "limits"] {
                for resource in ["cpu", "memory"] {
                    assert!(
                        c["resources"][bound][resource].is_string(),
                        "{name}: {bound}.{resource} missing"
                    );
                }
            }
            if is_job {
                assert!(
                    workload["spec"]["activeDeadlineSeconds"].is_number(),
                    "{name}: a Job is bounded in time instead of probed"
                );
            } else {
                for probe in ["readinessProbe", "livenessProbe"] {
                    assert!(c[probe].is_object(), "{name}: {probe} missing");
                }
            }
            assert_eq!(c["securityContext"]["runAsNonRoot"], true, "{name}");
            for var in c["env"].as_array().into_iter().flatten() {
                let var_name = var["name"].as_str().unwrap_or_default();
                if SECRETS.contains(&var_name) {
                    assert!(
                        var.get("value").is_none(),
                        "{name}: {var_name} is written out"
                    );
                    assert_eq!(
                        var["valueFrom"]["secretKeyRef"]["name"], "commerce-secrets",
                        "{name}: {var_name} comes from the Secret"
                    );
                }
            }
        }
    }
    for map in of_kind(docs, "ConfigMap") {
        let data = map["data"].as_object().expect("data");
        for (key, value) in data {
            let value = value.as_str().unwrap_or_default();
            let lower = key.to_lowercase();
            let secret = SECRETS.contains(&key.as_str())
                || lower.contains("password")
                || lower.contains("secret")
                || (value.contains("://") && value.contains('@'));
            assert!(
                !secret,
                "ConfigMap {} holds a secret: {key}",
                map["metadata"]["name"]
            );
        }
    }
    for kind in ["relay", "sealer"] {
        let d = named(docs, "Deployment", &format!("commerce-{kind}"));
        assert_eq!(
            d["spec"]["replicas"], 2,
            "{kind}: one active, one standing by"
        );
    }
    let api = named(docs, "Deployment", "commerce-api");
    let api_container = containers(api)[0];
    assert_eq!(api_container["readinessProbe"]["httpGet"]["path"], "/ready");
    assert_eq!(api_container["livenessProbe"]["httpGet"]["path"], "/health");
    let labels = &api["spec"]["template"]["metadata"]["labels"];
    let service = named(docs, "Service", "commerce-api");
    for (key, value) in service["spec"]["selector"].as_object().expect("selector") {
        assert_eq!(&labels[key], value, "the Service selects the api's pods");
    }
    let hpa = named(docs, "HorizontalPodAutoscaler", "commerce-api");
    assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], "commerce-api");
    assert!(hpa["spec"]["minReplicas"].as_i64().is_some_and(|n| n >= 2));
    let pdb = named(docs, "PodDisruptionBudget", "commerce-api");
    for (key, value) in pdb["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("matchLabels")
    {
        assert_eq!(&labels[key], value, "the PDB covers the api's pods");
    }
    let migrate = named(docs, "Job", "commerce-migrate");
    assert_eq!(containers(migrate)[0]["args"][0], "migrate");
    let projections: BTreeSet<String> = deployments
        .iter()
        .flat_map(|d| containers(d))
        .filter(|c| c["args"][0] == "project")
        .map(|c| {
            assert_eq!(c["args"][1], "--only");
            c["args"][2].as_str().expect("name").to_owned()
        })
        .collect();
    let expected: BTreeSet<String> = commerce_projections::registry::NAMES
        .iter()
        .map(|n| (*n).to_owned())
        .collect();
    assert_eq!(projections, expected, "one Deployment per projection");
}

#[test]
fn the_base_and_the_example_overlay_keep_the_invariants() {
    let base = render("base");
    check(&base);
    let example = render("overlays/example");
    check(&example);
    for doc in &example {
        if doc["kind"] != "Namespace" {
            assert_eq!(
                doc["metadata"]["namespace"], "commerce-example",
                "{} {}",
                doc["kind"], doc["metadata"]["name"]
            );
        }
        for c in containers(doc) {
            assert_eq!(c["image"], "registry.example.com/commerce:0.1.0");
        }
    }
    assert_eq!(
        named(&example, "Deployment", "commerce-api")["spec"]["replicas"],
        3
    );
    // Orders as partitions: a projection that can be partitioned, in two pods (each partition
    // active in one, standing by in the other).
    let orders = named(&example, "Deployment", "commerce-project-orders");
    assert_eq!(orders["spec"]["replicas"], 2);
    let args: Vec<&str> = containers(orders)[0]["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        args,
        ["project", "--only", "orders", "--partitions", "4"],
        "{args:?}"
    );
    assert!(commerce_projections::registry::partitionable_names().contains(&"orders"));
    let secret = named(&example, "Secret", "commerce-secrets");
    let keys: BTreeSet<&str> = secret["data"]
        .as_object()
        .expect("data")
        .keys()
        .map(String::as_str)
        .collect();
    for key in [
        "DATABASE_URL",
        "AMQP_URL",
        "REDIS_URL",
        "JWT_SECRET",
        "DATA_KEY",
    ] {
        assert!(keys.contains(key), "the Secret carries {key}");
    }
}
