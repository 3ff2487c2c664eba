//! `switchyard check`: the scenario's manifests load unchanged; every error is `file:line: reason`.

mod common;

use common::*;
use std::process::Command;

fn check(path: &std::path::Path) -> (bool, String) {
    let out = Command::new(binary())
        .args(["check", "--config"])
        .arg(path)
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn conf_acme_checks_and_reads_the_guides_shapes() {
    if !std::path::Path::new("/usr/share/modsecurity-crs/rules").is_dir() {
        assert!(
            std::env::var_os("SWITCHYARD_REQUIRE_SHARED").is_none(),
            "modsecurity-crs is required here"
        );
        eprintln!("skipping: Debian's modsecurity-crs is not installed");
        return;
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/acme");
    let (ok, out) = check(&dir);
    assert!(ok, "{out}");
    assert!(
        out.contains("read as 3 rule(s): [rate-limit, owasp-crs-request], {deny when the expression holds}, [forward-internal]"),
        "{out}"
    );
    for name in ["tor", "tor.exit", "vpn", "com.perplexity"] {
        assert!(
            out.contains(&format!("no ipIntel list defines the category `{name}`")),
            "{out}"
        );
    }
    assert!(out.contains("1 public, 4 internal"), "{out}");
}

#[test]
fn conf_acme_holds_the_scenario_manifests_byte_for_byte() {
    let Some(shared) = shared_dir() else { return };
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for f in ["agentendpoints-eks.yaml", "agentendpoints-gke.yaml"] {
        let ours = std::fs::read(root.join("conf/acme").join(f)).unwrap();
        let theirs = std::fs::read(shared.join("scenario").join(f)).unwrap();
        assert_eq!(ours, theirs, "{f} differs from the scenario's");
    }
    let cloud = std::fs::read_to_string(root.join("conf/acme/cloudendpoint.yaml")).unwrap();
    let policy = std::fs::read_to_string(shared.join("scenario/policy.yaml")).unwrap();
    let indented: String = policy
        .lines()
        .map(|l| {
            if l.is_empty() {
                "\n".to_string()
            } else {
                format!("      {l}\n")
            }
        })
        .collect();
    assert!(
        cloud.contains(&indented),
        "cloudendpoint.yaml must carry policy.yaml unchanged"
    );
}

/// The scenario's files, unchanged, with a CloudEndpoint built from its policy minus the actions
/// this build does not have: the guide's two shapes load, with one note each.
#[test]
fn scenario_files_load_unchanged_and_shapes_are_noted() {
    let Some(shared) = shared_dir() else { return };
    let dir = temp_dir("check");
    for f in ["agentendpoints-eks.yaml", "agentendpoints-gke.yaml"] {
        std::fs::copy(shared.join("scenario").join(f), dir.join(f)).unwrap();
    }
    std::fs::write(dir.join("00-gateway.yaml"), gateway_doc(8080)).unwrap();
    let policy = std::fs::read_to_string(shared.join("scenario/policy.yaml")).unwrap();
    // Keep on_http_request only: its response phase holds nothing but owasp-crs-response.
    let policy = policy.split("on_http_response:").next().unwrap();
    let kept: Vec<&str> = policy
        .split("\n    # ")
        .filter(|chunk| !chunk.contains("rate-limit") && !chunk.contains("owasp-crs"))
        .collect();
    let policy = kept.join("\n    # ");
    assert!(
        policy.contains("forward-internal") && !policy.contains("owasp"),
        "{policy}"
    );
    let mut cloud = String::from(
        "kind: CloudEndpoint\napiVersion: ngrok.k8s.ngrok.com/v1alpha1\nspec:\n  url: http://api.acme.example\n  trafficPolicy:\n    policy:\n",
    );
    for l in policy.lines() {
        cloud.push_str(&format!("      {l}\n"));
    }
    std::fs::write(dir.join("cloud.yaml"), cloud).unwrap();
    let (ok, out) = check(&dir);
    assert!(ok, "{out}");
    assert!(
        out.contains("on_http_request is a single rule (a mapping)"),
        "{out}"
    );
    assert!(
        out.contains("a rule nested inside `actions` runs in place"),
        "{out}"
    );
    assert!(out.contains("1 public, 4 internal"), "{out}");
    assert!(
        out.contains("{deny when the expression holds}, [forward-internal]"),
        "{out}"
    );
    for host in [
        "catalog-svc.default:80",
        "orders-svc.default:8443",
        "inventory-svc.default:80",
        "webhook-svc.default:9000",
    ] {
        assert!(out.contains(host), "{host} in {out}");
    }
}

#[test]
fn config_errors_name_file_and_line() {
    let dir = temp_dir("errors");
    let cases: &[(&str, &str, &str)] = &[
        ("kind: Gatewy\nspec: {}\n", ":1: unknown kind `Gatewy`", "unknown kind"),
        (
            "kind: Gateway\napiVersion: switchyard.dev/v1alpha1\nspec:\n  listeners:\n    - address: nowhere\n",
            ":5: listener address `nowhere` is not IP:port",
            "bad address",
        ),
        (
            "kind: Gateway\nspec:\n  listeners: [{address: 127.0.0.1:1}]\n  colour: blue\n",
            ":4: unknown field `colour` in Gateway spec",
            "unknown Gateway field",
        ),
        (
            "kind: AgentEndpoint\nspec:\n  url: https://x.internal\n  bindings: [public]\n  upstream: {url: 'http://x:1'}\n",
            ":4: `https://x.internal` ends in .internal, so its binding must be internal",
            "internal binding",
        ),
        (
            "kind: CloudEndpoint\nspec:\n  url: http://a.example\n  trafficPolicy:\n    policy:\n      on_http_request:\n        - expressions: [\"req.method ==\"]\n          actions: [{type: deny}]\n",
            ":7: invalid CEL expression `req.method ==`",
            "CEL syntax",
        ),
        (
            "kind: CloudEndpoint\nspec:\n  url: http://a.example\n  trafficPolicy:\n    policy:\n      on_http_request:\n        - actions:\n            - type: custom-response\n              config: {body: '${req.nope +}'}\n",
            ":9: invalid CEL expression",
            "template syntax",
        ),
        (
            "kind: CloudEndpoint\nspec:\n  url: http://a.example\n  trafficPolicy:\n    policy:\n      on_http_request:\n        - expressions: [\"res.status_code == 200\"]\n          actions: [{type: deny}]\n",
            ":7: expression `res.status_code == 200` uses unknown variable `res`",
            "res in request phase",
        ),
        ("a: [1, 2\n", ":2: invalid YAML", "YAML syntax"),
    ];
    // Endpoint cases get a Gateway document first, which shifts their lines by GATEWAY_LINES.
    const GATEWAY: &str = "kind: Gateway\nspec:\n  listeners: [{address: 127.0.0.1:1}]\n---\n";
    const GATEWAY_LINES: usize = 4;
    for (i, (text, want, what)) in cases.iter().enumerate() {
        let file = dir.join(format!("case{i}.yaml"));
        let endpoint = text.contains("Endpoint");
        let body = if endpoint {
            format!("{GATEWAY}{text}")
        } else {
            text.to_string()
        };
        std::fs::write(&file, body).unwrap();
        let (ok, out) = check(&file);
        assert!(!ok, "{what}: {out}");
        let want = match (endpoint, want.split_once(": ")) {
            (true, Some((line, rest))) => {
                let n: usize = line.trim_start_matches(':').parse().unwrap();
                format!(":{}: {rest}", n + GATEWAY_LINES)
            }
            _ => want.to_string(),
        };
        let expected = format!("case{i}.yaml{want}");
        assert!(
            out.contains(&expected),
            "{what}: expected `{expected}` in:\n{out}"
        );
    }
}
