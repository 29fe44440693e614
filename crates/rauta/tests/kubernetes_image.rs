//! The container image definition (`Dockerfile`, `.dockerignore`) and the deploy manifests agree with the
//! workspace. No Docker engine or registry is reachable where the tests run, so the image itself cannot be
//! built here (see docs/benchmarks.md, "Run in a cluster" in the README); this checks, offline, what a
//! build would otherwise only find out late: that the stages, the package, the paths and the image name
//! all refer to things that exist.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// One Dockerfile instruction: keyword (upper case) and its arguments, continuation lines joined.
#[derive(Debug)]
struct Instruction {
    keyword: String,
    args: String,
}

fn instructions(text: &str) -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
            continue;
        }
        current.push_str(trimmed);
        let (keyword, args) = current
            .split_once(char::is_whitespace)
            .unwrap_or((&current, ""));
        out.push(Instruction {
            keyword: keyword.to_ascii_uppercase(),
            args: args.trim().to_string(),
        });
        current.clear();
    }
    assert!(
        current.is_empty(),
        "the Dockerfile ends inside a continued line"
    );
    out
}

#[test]
fn dockerfile_stages_package_and_paths_match_the_workspace() {
    let root = repo();
    let text = std::fs::read_to_string(root.join("Dockerfile")).unwrap();
    let all = instructions(&text);
    let known = [
        "FROM",
        "RUN",
        "WORKDIR",
        "COPY",
        "ENTRYPOINT",
        "CMD",
        "ENV",
        "ARG",
        "LABEL",
        "USER",
        "EXPOSE",
    ];
    for i in &all {
        assert!(
            known.contains(&i.keyword.as_str()),
            "unknown instruction {i:?}"
        );
    }

    // Two stages: a named build stage and a runtime stage that copies the binary from it.
    let froms: Vec<&Instruction> = all.iter().filter(|i| i.keyword == "FROM").collect();
    assert_eq!(froms.len(), 2, "{froms:?}");
    let build_stage = froms[0].args.split_whitespace().collect::<Vec<_>>();
    assert_eq!(build_stage.len(), 3, "FROM image AS name: {:?}", froms[0]);
    assert!(build_stage[1].eq_ignore_ascii_case("as"));
    let stage = build_stage[2];

    // The builder's Rust is the workspace's toolchain.
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let rust_version = manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("rust-version = "))
        .unwrap()
        .trim_matches('"');
    assert!(
        build_stage[0].starts_with(&format!("rust:{rust_version}")),
        "builder {} vs rust-version {rust_version}",
        build_stage[0]
    );

    // The BPF programs need nightly rust-src and bpf-linker (aya-build in rauta-dataplane's build.rs).
    let runs: String = all
        .iter()
        .filter(|i| i.keyword == "RUN")
        .map(|i| i.args.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        runs.contains("nightly") && runs.contains("rust-src"),
        "{runs}"
    );
    assert!(runs.contains("bpf-linker"), "{runs}");
    let build_rs = std::fs::read_to_string(root.join("crates/rauta-dataplane/build.rs")).unwrap();
    assert!(
        build_rs.contains("aya_build"),
        "the BPF build moved: update the Dockerfile"
    );

    // `cargo build -p rauta --locked`: the package exists, and --locked needs the lock file.
    assert!(
        runs.contains("cargo build --release --locked -p rauta"),
        "{runs}"
    );
    let package = std::fs::read_to_string(root.join("crates/rauta/Cargo.toml")).unwrap();
    assert!(package.contains("name = \"rauta\""));
    assert!(root.join("Cargo.lock").is_file());
    // The binary is where cargo puts it (no target-dir override in .cargo/config.toml).
    let cargo_config = std::fs::read_to_string(root.join(".cargo/config.toml")).unwrap_or_default();
    assert!(!cargo_config.contains("target-dir"), "{cargo_config}");
    assert!(runs.contains("cp target/release/rauta /rauta"), "{runs}");

    // The runtime stage copies that binary from the build stage and runs it.
    let copy = all
        .iter()
        .find(|i| i.keyword == "COPY" && i.args.starts_with("--from="))
        .expect("a COPY --from");
    assert_eq!(
        copy.args,
        format!("--from={stage} /rauta /usr/local/bin/rauta")
    );
    let entrypoint = all.iter().find(|i| i.keyword == "ENTRYPOINT").unwrap();
    assert_eq!(entrypoint.args, r#"["/usr/local/bin/rauta"]"#);

    // `COPY . .` must not send build outputs or history as context.
    let ignore = std::fs::read_to_string(root.join(".dockerignore")).unwrap();
    for entry in ["/target", "/.git"] {
        assert!(
            ignore.lines().any(|l| l.trim() == entry),
            "{entry} not in .dockerignore"
        );
    }
}

#[test]
fn the_daemonset_runs_the_image_kustomize_names() {
    let root = repo();
    let daemonset = std::fs::read_to_string(root.join("deploy/daemonset.yaml")).unwrap();
    let kustomization = std::fs::read_to_string(root.join("deploy/kustomization.yaml")).unwrap();
    let image = daemonset
        .lines()
        .find_map(|l| l.trim().strip_prefix("image: "))
        .unwrap()
        .trim();
    assert!(
        kustomization.contains(&format!("- name: {image}")),
        "kustomization.yaml does not set image {image:?}"
    );
    // The container's arguments are flags `rauta run` accepts.
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_rauta"))
        .args(["run", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in daemonset
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- --"))
        .map(|f| f.split('=').next().unwrap_or(f))
    {
        assert!(
            help.contains(&format!("--{flag}")),
            "rauta run has no --{flag}"
        );
    }
}
