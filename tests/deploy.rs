//! The deployment examples agree with what `subsync watch` serves and needs: the linters in
//! `.ci/lint-deploy` check their schemas, these check their meaning.

use std::path::Path;

use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn documents(file: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(Path::new(ROOT).join(file)).unwrap();
    let limits = subsync::yaml::Limits {
        max_depth: 64,
        max_nodes: 100_000,
    };
    subsync::yaml::parse(&text, &limits)
        .unwrap()
        .iter()
        .filter_map(|d| d.root.as_ref())
        .map(|root| subsync::yaml::from_node(root).unwrap())
        .collect()
}

fn subsync_container(deployment: &Value) -> &Value {
    deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "subsync")
        .unwrap()
}

#[test]
fn the_deployments_probe_what_the_daemon_serves_with_one_writer() {
    for file in [
        "examples/kubernetes/deployment.yaml",
        "examples/kubernetes/deployment-configmap.yaml",
    ] {
        let deployment = &documents(file)[0];
        assert_eq!(deployment["spec"]["replicas"], 1, "{file}: one writer");
        assert_eq!(deployment["spec"]["strategy"]["type"], "Recreate", "{file}");
        let c = subsync_container(deployment);
        let args: Vec<&str> = c["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(args[0], "watch", "{file}");
        let listen = args[args.iter().position(|a| *a == "--listen").unwrap() + 1];
        assert_eq!(listen, "0.0.0.0:9464", "{file}");
        assert_eq!(c["ports"][0]["name"], "metrics");
        assert_eq!(c["ports"][0]["containerPort"], 9464);
        assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz", "{file}");
        assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz", "{file}");
        assert_eq!(
            c["securityContext"]["readOnlyRootFilesystem"], true,
            "{file}"
        );
        assert_eq!(c["securityContext"]["runAsNonRoot"], true, "{file}");
        // The key is a file inside the mounted Secret.
        let key_file = c["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "SUBSYNC_SECRET_KEY_FILE")
            .unwrap()["value"]
            .as_str()
            .unwrap();
        let mounts = c["volumeMounts"].as_array().unwrap();
        assert!(
            mounts
                .iter()
                .any(|m| key_file.starts_with(m["mountPath"].as_str().unwrap())
                    && m["name"] == "credentials"),
            "{file}"
        );
        // The watched path lies in a mounted volume.
        let watched = args[1];
        assert!(
            mounts
                .iter()
                .any(|m| watched.starts_with(m["mountPath"].as_str().unwrap())),
            "{file}: {watched} is not mounted"
        );
    }
}

#[test]
fn the_image_runs_subsync_as_a_non_root_user_on_the_metrics_port() {
    let dockerfile = std::fs::read_to_string(Path::new(ROOT).join("Dockerfile")).unwrap();
    assert!(dockerfile.contains("cargo build --release --locked"));
    assert!(dockerfile.contains("ENTRYPOINT [\"/usr/local/bin/subsync\"]"));
    assert!(dockerfile.contains("USER 65532:65532"));
    assert!(dockerfile.contains("EXPOSE 9464"));
}

#[test]
fn the_workflow_comments_plans_and_respects_detailed_exit_codes() {
    let workflow = &documents("examples/github-actions/subsync.yml")[0];
    let text = std::fs::read_to_string(Path::new(ROOT).join("examples/github-actions/subsync.yml"))
        .unwrap();
    assert!(text.contains("--format markdown --detailed-exitcode"));
    assert!(text.contains("2) echo \"changes=true\""));
    let apply = &workflow["jobs"]["apply"];
    assert_eq!(apply["concurrency"]["cancel-in-progress"], false);
    assert_eq!(
        workflow["jobs"]["plan"]["permissions"]["pull-requests"],
        "write"
    );
}

#[test]
fn the_ha_example_runs_two_standby_replicas_on_separate_nodes_with_the_password_in_a_file() {
    let deployment = &documents("examples/kubernetes/ha/deployment.yaml")[0];
    let spec = &deployment["spec"];
    assert_eq!(spec["replicas"], 2);
    let labels = &spec["template"]["metadata"]["labels"];
    let anti = &spec["template"]["spec"]["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        [0];
    assert_eq!(anti["topologyKey"], "kubernetes.io/hostname");
    assert_eq!(&anti["labelSelector"]["matchLabels"], labels);
    let c = subsync_container(deployment);
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args[0], "watch");
    assert!(args.contains(&"--standby"), "{args:?}");
    let env = c["env"].as_array().unwrap();
    let var = |name: &str| env.iter().find(|e| e["name"] == name).unwrap();
    assert_eq!(
        var("SUBSYNC_STATE")["valueFrom"]["secretKeyRef"]["key"],
        "url"
    );
    let password_file = var("SUBSYNC_STATE_PASSWORD_FILE")["value"]
        .as_str()
        .unwrap();
    let mounts = c["volumeMounts"].as_array().unwrap();
    assert!(
        mounts.iter().any(|m| m["name"] == "postgres"
            && password_file.starts_with(m["mountPath"].as_str().unwrap())),
        "the password file is in the mounted Secret"
    );
    // No state volume: nothing to detach when a node dies.
    let volumes = spec["template"]["spec"]["volumes"].as_array().unwrap();
    assert!(
        volumes
            .iter()
            .all(|v| v.get("persistentVolumeClaim").is_none())
    );
    let pdb = &documents("examples/kubernetes/ha/pdb.yaml")[0];
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert_eq!(&pdb["spec"]["selector"]["matchLabels"], labels);
    // The example URL is one subsync accepts, and it carries no password.
    let secret = &documents("examples/kubernetes/ha/secret.example.yaml")[0];
    let url = secret["stringData"]["url"].as_str().unwrap();
    let location = subsync::ledger::Location::postgres(url, None).unwrap();
    match location {
        subsync::ledger::Location::Postgres(target) => {
            assert_eq!(target.tls, subsync::ledger::TlsMode::VerifyFull);
            assert_eq!(target.password(), None);
        }
        subsync::ledger::Location::Sqlite(_) => panic!("{url} is not a postgres URL"),
    }
}
