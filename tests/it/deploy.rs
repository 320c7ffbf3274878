//! The deployment examples agree with what `subsync watch` serves and needs: the linters in
//! `.ci/lint-deploy` check their schemas, these check their meaning.

use std::path::Path;

use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// Where the examples say subsync is hosted (a placeholder, like the image's registry path).
const HOME: &str = "https://github.com/example/subsync";
/// The guide whose sections the alerts' runbook URLs point at.
const RUNBOOKS: &str = "docs/operations.md";

fn parse_documents(text: &str) -> Vec<Value> {
    let limits = subsync::yaml::TreeLimits {
        max_depth: 64,
        max_nodes: 100_000,
    };
    subsync::yaml::parse(text, &limits)
        .unwrap()
        .iter()
        .filter_map(|d| d.root.as_ref())
        .map(|root| subsync::yaml::from_node(root).unwrap())
        .collect()
}

fn documents(file: &str) -> Vec<Value> {
    parse_documents(&std::fs::read_to_string(Path::new(ROOT).join(file)).unwrap())
}

/// An overlay as `kubectl apply -k` would apply it; `None` (said on stderr) where kubectl is
/// not installed, except under CI, where that fails the test.
fn rendered(overlay: &str) -> Option<Vec<Value>> {
    let dir = Path::new(ROOT)
        .join("examples/kubernetes/overlays")
        .join(overlay);
    match std::process::Command::new("kubectl")
        .arg("kustomize")
        .arg(&dir)
        .output()
    {
        Ok(out) => {
            assert!(
                out.status.success(),
                "kubectl kustomize {overlay}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Some(parse_documents(&String::from_utf8(out.stdout).unwrap()))
        }
        Err(e) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "kubectl is needed to render the overlays under CI: {e}"
            );
            // Past the harness's capture, so that the skip shows in every run's output.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "skipped rendering overlay {overlay}: kubectl is not installed ({e})"
            );
            None
        }
    }
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn subsync_container(deployment: &Value) -> &Value {
    deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "subsync")
        .unwrap()
}

fn env_value<'a>(container: &'a Value, name: &str) -> Option<&'a Value> {
    container["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
}

#[test]
fn every_overlay_probes_what_the_daemon_serves_without_a_secret_or_an_api_token() {
    for overlay in ["git-sync", "configmap", "ha-postgres", "monitoring"] {
        let Some(docs) = rendered(overlay) else {
            return;
        };
        assert!(of_kind(&docs, "Secret").is_empty(), "{overlay}: a Secret");
        let deployments = of_kind(&docs, "Deployment");
        assert_eq!(deployments.len(), 1, "{overlay}: one Deployment");
        let deployment = deployments[0];
        let pod = &deployment["spec"]["template"]["spec"];
        assert_eq!(pod["automountServiceAccountToken"], false, "{overlay}");
        let account = of_kind(&docs, "ServiceAccount");
        assert_eq!(
            account[0]["automountServiceAccountToken"], false,
            "{overlay}"
        );
        assert_eq!(pod["serviceAccountName"], account[0]["metadata"]["name"]);
        let c = subsync_container(deployment);
        assert_eq!(c["args"][0], "watch", "{overlay}");
        let config = of_kind(&docs, "ConfigMap")
            .into_iter()
            .find(|m| m["metadata"]["name"] == "subsync")
            .unwrap();
        assert_eq!(config["data"]["SUBSYNC_LISTEN"], "0.0.0.0:9464");
        assert_eq!(c["ports"][0]["name"], "metrics");
        assert_eq!(c["ports"][0]["containerPort"], 9464);
        assert_eq!(
            c["livenessProbe"]["httpGet"]["path"], "/healthz",
            "{overlay}"
        );
        assert_eq!(
            c["readinessProbe"]["httpGet"]["path"], "/readyz",
            "{overlay}"
        );
        assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
        assert_eq!(c["securityContext"]["runAsNonRoot"], true);
        let mounts = c["volumeMounts"].as_array().unwrap();
        let mounted = |path: &str, volume: Option<&str>| {
            mounts.iter().any(|m| {
                path.starts_with(m["mountPath"].as_str().unwrap())
                    && volume.is_none_or(|v| m["name"] == v)
            })
        };
        // The key is a file inside the mounted Secret.
        let key_file = env_value(c, "SUBSYNC_SECRET_KEY_FILE").unwrap()["value"]
            .as_str()
            .unwrap();
        assert!(mounted(key_file, Some("credentials")), "{overlay}");
        // The watched path ($(MANIFESTS_PATH), expanded by the kubelet) lies in a volume.
        assert_eq!(c["args"][1], "$(MANIFESTS_PATH)");
        let watched = env_value(c, "MANIFESTS_PATH").unwrap()["value"]
            .as_str()
            .unwrap();
        assert!(
            mounted(watched, None),
            "{overlay}: {watched} is not mounted"
        );
        // Every volume a container mounts exists.
        let volumes: Vec<&str> = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap())
            .collect();
        for container in pod["containers"].as_array().unwrap() {
            for m in container["volumeMounts"].as_array().unwrap() {
                assert!(
                    volumes.contains(&m["name"].as_str().unwrap()),
                    "{overlay}: {m}"
                );
            }
        }
    }
}

#[test]
fn every_secret_volume_is_readable_by_the_non_root_user_and_the_key_draws_no_warning() {
    use std::os::unix::fs::PermissionsExt;
    let ws = crate::common::Workspace::new();
    for overlay in ["git-sync", "configmap", "ha-postgres", "monitoring"] {
        let Some(docs) = rendered(overlay) else {
            return;
        };
        let pod = &of_kind(&docs, "Deployment")[0]["spec"]["template"]["spec"];
        let user =
            subsync_container(of_kind(&docs, "Deployment")[0])["securityContext"]["runAsUser"]
                .as_u64()
                .unwrap();
        assert_ne!(user, 0, "{overlay}: runs as root");
        // The kubelet makes a Secret's files root's, of the pod's fsGroup: the non-root user
        // reads them through that group.
        assert!(pod["securityContext"]["fsGroup"].is_u64(), "{overlay}");
        let secrets: Vec<&Value> = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v["secret"].is_object())
            .collect();
        assert!(!secrets.is_empty(), "{overlay}");
        for volume in secrets {
            let mode = volume["secret"]["defaultMode"].as_u64().unwrap() as u32;
            assert_eq!(mode & 0o040, 0o040, "{overlay}: {volume}: unreadable");
            assert_eq!(mode & 0o007, 0, "{overlay}: {volume}: open to everyone");
            // subsync, given a key file of that mode, says nothing about it.
            std::fs::set_permissions(ws.key_file(), std::fs::Permissions::from_mode(mode)).unwrap();
            let out = ws.run(None, &["usersig"]);
            let err = crate::common::stderr(&out);
            assert!(out.status.success(), "{err}");
            assert!(
                !err.contains("secret key file"),
                "{overlay} {mode:o}: {err}"
            );
        }
    }
}

#[test]
fn the_sqlite_overlays_run_one_writer_on_a_claim_of_their_own() {
    for overlay in ["git-sync", "configmap", "monitoring"] {
        let Some(docs) = rendered(overlay) else {
            return;
        };
        let deployment = of_kind(&docs, "Deployment")[0];
        assert_eq!(deployment["spec"]["replicas"], 1, "{overlay}: one writer");
        assert_eq!(
            deployment["spec"]["strategy"]["type"], "Recreate",
            "{overlay}"
        );
        let claim = of_kind(&docs, "PersistentVolumeClaim")[0];
        assert_eq!(claim["spec"]["accessModes"][0], "ReadWriteOnce");
        let state = env_value(subsync_container(deployment), "SUBSYNC_STATE").unwrap();
        assert_eq!(state["value"], "/var/lib/subsync");
        let volumes = deployment["spec"]["template"]["spec"]["volumes"]
            .as_array()
            .unwrap();
        assert!(
            volumes
                .iter()
                .any(|v| v["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"])
        );
    }
}

#[test]
fn the_monitoring_overlay_adds_the_scrape_the_alerts_and_the_dashboard() {
    let Some(docs) = rendered("monitoring") else {
        return;
    };
    let monitor = of_kind(&docs, "PodMonitor")[0];
    let deployment = of_kind(&docs, "Deployment")[0];
    assert_eq!(
        monitor["spec"]["selector"]["matchLabels"],
        deployment["spec"]["template"]["metadata"]["labels"]
    );
    assert_eq!(monitor["spec"]["podMetricsEndpoints"][0]["port"], "metrics");
    let rules = &of_kind(&docs, "PrometheusRule")[0]["spec"]["groups"][0]["rules"];
    // The runbooks are sections of the operations guide, one heading per alert, at the
    // anchor GitHub gives that heading.
    let guide = std::fs::read_to_string(Path::new(ROOT).join(RUNBOOKS)).unwrap();
    let anchors = crate::common::markdown::read(&guide).anchors;
    for rule in rules.as_array().unwrap() {
        let alert = rule["alert"].as_str().unwrap();
        assert!(rule["annotations"]["summary"].is_string(), "{alert}");
        let anchor = alert.to_lowercase();
        assert!(
            anchors.contains(&anchor),
            "{RUNBOOKS} has no heading for {alert} (#{anchor})"
        );
        assert_eq!(
            rule["annotations"]["runbook_url"],
            format!("{HOME}/blob/main/{RUNBOOKS}#{anchor}"),
            "{alert}"
        );
    }
    let dashboard = of_kind(&docs, "ConfigMap")
        .into_iter()
        .find(|m| m["metadata"]["labels"]["grafana_dashboard"] == "1")
        .unwrap();
    let json: Value =
        serde_json::from_str(dashboard["data"]["subsync.json"].as_str().unwrap()).unwrap();
    assert!(json["panels"].as_array().unwrap().len() >= 10);
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
fn the_ha_overlay_runs_two_standby_replicas_on_separate_nodes_with_the_password_in_a_file() {
    let Some(docs) = rendered("ha-postgres") else {
        return;
    };
    let deployment = of_kind(&docs, "Deployment")[0];
    let spec = &deployment["spec"];
    assert_eq!(spec["replicas"], 2);
    assert_eq!(spec["strategy"]["type"], "RollingUpdate");
    let labels = &spec["template"]["metadata"]["labels"];
    let anti = &spec["template"]["spec"]["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        [0];
    assert_eq!(anti["topologyKey"], "kubernetes.io/hostname");
    assert_eq!(&anti["labelSelector"]["matchLabels"], labels);
    let c = subsync_container(deployment);
    assert_eq!(env_value(c, "SUBSYNC_STANDBY").unwrap()["value"], "true");
    assert_eq!(
        env_value(c, "SUBSYNC_STATE").unwrap()["valueFrom"]["secretKeyRef"]["key"],
        "url"
    );
    let password_file = env_value(c, "SUBSYNC_STATE_PASSWORD_FILE").unwrap()["value"]
        .as_str()
        .unwrap();
    let mounts = c["volumeMounts"].as_array().unwrap();
    assert!(
        mounts.iter().any(|m| m["name"] == "postgres"
            && password_file.starts_with(m["mountPath"].as_str().unwrap())),
        "the password file is in the mounted Secret"
    );
    // No state volume: nothing to detach when a node dies.
    assert!(of_kind(&docs, "PersistentVolumeClaim").is_empty());
    let volumes = spec["template"]["spec"]["volumes"].as_array().unwrap();
    assert!(
        volumes
            .iter()
            .all(|v| v.get("persistentVolumeClaim").is_none())
    );
    let pdb = of_kind(&docs, "PodDisruptionBudget")[0];
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert_eq!(&pdb["spec"]["selector"]["matchLabels"], labels);
}

#[test]
fn the_ha_overlays_postgres_url_is_one_subsync_accepts_without_a_password() {
    let text = std::fs::read_to_string(
        Path::new(ROOT).join("examples/kubernetes/overlays/ha-postgres/kustomization.yaml"),
    )
    .unwrap();
    let url = text
        .split("--from-literal=url='")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .unwrap();
    let location = subsync::ledger::Location::postgres(url, None).unwrap();
    let target = location
        .target_as::<subsync::ledger::PgTarget>()
        .unwrap_or_else(|| panic!("{url} is not a postgres URL"));
    assert_eq!(target.tls, subsync::ledger::TlsMode::VerifyFull);
    assert_eq!(target.password(), None);
}
