//! The deployment recipes under deploy/ are usable as they are: the systemd unit passes
//! `systemd-analyze verify` and starts this binary with arguments it accepts; the Kubernetes
//! manifests are YAML whose objects fit together (labels, the Secret's keys, probes on
//! `/healthz` and `/readyz`, a grace period longer than the drain) and whose gatehouse.toml
//! is a valid configuration; the container file builds the `gatehouse` binary into a
//! non-root image. (No container engine runs here, so the image itself is not built.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use saphyr_parser::{Event, Parser};
use serde_json::{Map, Value};
use std::{
    path::{Path, PathBuf},
    process::Command,
};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn the_systemd_unit_verifies_and_starts_this_binary_with_valid_arguments() {
    let unit = read("deploy/systemd/gatehouse.service");
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    let mut args = exec.split_whitespace();
    assert_eq!(args.next(), Some("/usr/local/bin/gatehouse"));
    let args: Vec<&str> = args.collect();

    // verify checks that ExecStart is executable: point it at the binary under test.
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_gatehouse");
    let path = dir.path().join("gatehouse.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/gatehouse", bin)).unwrap();
    let verified = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (Debian package systemd) runs");
    let stderr = String::from_utf8_lossy(&verified.stderr);
    assert!(verified.status.success(), "{stderr}");
    // Unknown keys and bad values are warnings on stderr with exit status 0.
    assert!(stderr.trim().is_empty(), "warnings: {stderr}");

    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(&path)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&security.stdout);
    let exposure: f64 = report
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for gatehouse.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level: {report}"));
    assert!(exposure <= 2.0, "exposure {exposure}:\n{report}");

    // The arguments are the CLI's: with --help appended, it parses them and exits 0.
    let help = Command::new(bin)
        .args(&args)
        .arg("--help")
        .output()
        .unwrap();
    assert!(
        help.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&help.stderr)
    );
}

/// One YAML document as JSON (every scalar a string). Refuses a key given twice, which YAML
/// forbids and `kubectl` rejects.
fn documents(text: &str) -> Vec<Value> {
    let mut stack: Vec<(Value, Option<String>)> = Vec::new();
    let mut done = Vec::new();
    for event in Parser::new_from_str(text) {
        let (event, span) = event.unwrap_or_else(|e| panic!("YAML: {e}"));
        let value = match event {
            Event::MappingStart(..) => {
                stack.push((Value::Object(Map::new()), None));
                continue;
            }
            Event::SequenceStart(..) => {
                stack.push((Value::Array(Vec::new()), None));
                continue;
            }
            Event::MappingEnd | Event::SequenceEnd => stack.pop().unwrap().0,
            Event::Scalar(text, ..) => Value::String(text.into_owned()),
            Event::Alias(_) => panic!("aliases are not used in the manifests ({span:?})"),
            _ => continue,
        };
        match stack.last_mut() {
            None => done.push(value),
            Some((Value::Array(items), _)) => items.push(value),
            Some((Value::Object(map), pending)) => match pending.take() {
                None => *pending = Some(value.as_str().expect("a scalar key").to_owned()),
                Some(key) => {
                    assert!(!map.contains_key(&key), "key {key:?} twice ({span:?})");
                    map.insert(key, value);
                }
            },
            Some(_) => unreachable!(),
        }
    }
    done
}

fn manifest(file: &str) -> Value {
    let mut docs = documents(&read(&format!("deploy/kubernetes/{file}")));
    assert_eq!(docs.len(), 1, "{file}: one object per file");
    docs.remove(0)
}

#[test]
fn the_kubernetes_manifests_parse_and_fit_together() {
    let kustomization = manifest("kustomization.yaml");
    let listed: Vec<&str> = kustomization["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    let mut files: Vec<String> = std::fs::read_dir(repo("deploy/kubernetes"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name != "kustomization.yaml")
        .collect();
    files.sort();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(sorted, files, "kustomization.yaml lists every manifest");
    let kinds: Vec<String> = listed
        .iter()
        .map(|file| manifest(file)["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        kinds,
        [
            "Secret",
            "ConfigMap",
            "Deployment",
            "Service",
            "PodDisruptionBudget"
        ]
    );

    let deployment = manifest("deployment.yaml");
    let secret = manifest("secret.yaml");
    let config_map = manifest("configmap.yaml");
    let service = manifest("service.yaml");
    let budget = manifest("poddisruptionbudget.yaml");
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    assert_eq!(&deployment["spec"]["selector"]["matchLabels"], labels);
    assert_eq!(&service["spec"]["selector"], labels);
    assert_eq!(&budget["spec"]["selector"]["matchLabels"], labels);

    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], "true");
    // Every secret the pod reads is in the Secret.
    let secret_name = secret["metadata"]["name"].as_str().unwrap();
    let mut read_keys = Vec::new();
    for var in container["env"].as_array().unwrap() {
        if let Some(reference) = var["valueFrom"]["secretKeyRef"].as_object() {
            assert_eq!(reference["name"], secret_name, "{var}");
            let key = reference["key"].as_str().unwrap();
            assert!(
                secret["stringData"].get(key).is_some(),
                "{key} not in the Secret"
            );
            read_keys.push(var["name"].as_str().unwrap().to_owned());
        }
    }
    assert!(
        read_keys.contains(&"GATEHOUSE_MASTER_KEY".to_owned()),
        "{read_keys:?}"
    );
    let volumes = pod["volumes"].as_array().unwrap();
    assert!(
        volumes
            .iter()
            .any(|v| v["configMap"]["name"] == config_map["metadata"]["name"]),
        "the ConfigMap is mounted"
    );

    // The configuration is one Gatehouse accepts, and the pod's grace period covers the drain.
    let toml = config_map["data"]["gatehouse.toml"].as_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gatehouse.toml");
    std::fs::write(&path, toml).unwrap();
    let config = gatehouse::Config::load(Some(&path)).unwrap();
    let grace: u64 = pod["terminationGracePeriodSeconds"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let drain = config.shutdown.ready_delay + config.shutdown.drain_timeout;
    assert!(
        drain.as_secs() + 10 <= grace,
        "{drain:?} of shutdown in a {grace} s grace period"
    );
    assert!(
        !config.shutdown.ready_delay.is_zero(),
        "the endpoint removal needs time to reach the proxies"
    );
}

#[test]
fn the_container_file_builds_this_binary_into_a_non_root_image_without_a_shell() {
    let file = read("deploy/container/Containerfile");
    let stages: Vec<&str> = file.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(
        stages.len(),
        2,
        "a build stage and a runtime stage: {stages:?}"
    );
    assert!(stages[1].contains("distroless"), "{stages:?}");
    assert!(file.contains("cargo build --release --locked -p gatehouse-cli"));
    assert!(file.contains("target/release/gatehouse "));
    assert!(file.lines().any(|l| l == "USER 65532:65532"));
    // Exec form: no shell is needed (or present) to start it.
    let entrypoint = file
        .lines()
        .find_map(|l| l.strip_prefix("ENTRYPOINT "))
        .unwrap();
    let entrypoint: Vec<String> = serde_json::from_str(entrypoint).unwrap();
    assert_eq!(entrypoint, ["/usr/local/bin/gatehouse"]);
    // The build stage's Rust is the workspace's rust-version.
    let manifest = read("Cargo.toml");
    let version = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .unwrap()
        .trim_matches('"');
    assert!(
        stages[0].contains(&format!("rust:{version}-")),
        "{stages:?} vs {version}"
    );
}
