//! Live reload of `--manifests` under traffic, and what happens with bad manifests at startup and on reload.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http::{Method, StatusCode};

fn base(web: std::net::SocketAddr, api: std::net::SocketAddr) -> String {
    ingress_class() + &service("web", &[web]) + &service("api", &[api])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reload_under_load_drops_nothing_and_serves_the_new_route_quickly() {
    let (web, _w) = backend("web").await;
    let (api, _a) = backend("api").await;
    let dir = ManifestDir::new();
    dir.write("services.yaml", &base(web, api));
    dir.write(
        "routes.yaml",
        &ingress(
            "i",
            &[(Some("h.example"), &[path("/", "Prefix", "web")])],
            None,
        ),
    );
    let rauta = Rauta::start(dir.path(), &[]);

    // Clients loop on keep-alive and fresh connections while the configuration changes underneath.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for client in 0..4 {
        let (stop, sent, http) = (stop.clone(), sent.clone(), rauta.http);
        clients.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            let mut connection = Connection::open(http).await.unwrap();
            while !stop.load(Ordering::Relaxed) {
                // Half the clients keep one connection, half reconnect every time.
                if client % 2 == 1 {
                    connection = Connection::open(http).await.unwrap();
                }
                match connection
                    .send(Method::GET, "h.example", "/web/x", Bytes::new())
                    .await
                {
                    Ok(answer)
                        if answer.status == StatusCode::OK && answer.backend() == Some("web") => {}
                    Ok(answer) => failures.push(format!(
                        "{} {:?} {}",
                        answer.status,
                        answer.backend(),
                        answer.text()
                    )),
                    Err(error) => failures.push(error.to_string()),
                }
                sent.fetch_add(1, Ordering::Relaxed);
            }
            failures
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Add /api, then change unrelated things twice more; /web/x must keep working throughout.
    let changed = Instant::now();
    dir.write(
        "routes.yaml",
        &ingress(
            "i",
            &[(
                Some("h.example"),
                &[path("/api", "Prefix", "api"), path("/", "Prefix", "web")],
            )],
            None,
        ),
    );
    eventually("the new /api route", || async {
        get(rauta.http, "h.example", "/api/v1")
            .await
            .is_ok_and(|a| a.backend() == Some("api"))
    })
    .await;
    let took = changed.elapsed();
    assert!(
        took < Duration::from_millis(1500),
        "new route served after {took:?}"
    );
    for round in 0..3 {
        dir.write("extra.yaml", &service(&format!("unused{round}"), &[web]));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for client in clients {
        failures.extend(client.await.unwrap());
    }
    let total = sent.load(Ordering::Relaxed);
    assert!(total > 100, "only {total} requests sent");
    assert!(
        failures.is_empty(),
        "{} of {total} requests failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(
        rauta
            .metric("rauta_config_reloads_total{result=\"ok\"}")
            .await
            .unwrap()
            >= 1.0
    );
    assert_eq!(
        rauta
            .metric("rauta_config_reloads_total{result=\"failed\"}")
            .await,
        Some(0.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_edit_keeps_the_old_table_and_counts_a_failed_reload() {
    let (web, _w) = backend("web").await;
    let (api, _a) = backend("api").await;
    let dir = ManifestDir::new();
    dir.write("services.yaml", &base(web, api));
    let good = ingress(
        "i",
        &[(Some("h.example"), &[path("/", "Prefix", "web")])],
        None,
    );
    dir.write("routes.yaml", &good);
    let rauta = Rauta::start(dir.path(), &[]);
    assert_eq!(
        get(rauta.http, "h.example", "/").await.unwrap().backend(),
        Some("web")
    );
    let before = rauta
        .metric("rauta_config_last_reload_success_timestamp_seconds")
        .await
        .unwrap();
    assert!(before > 0.0);

    // A YAML syntax error in the middle of an edit that would also have moved / to api.
    let broken = ingress(
        "i",
        &[(Some("h.example"), &[path("/", "Prefix", "api")])],
        None,
    ) + "---\nkind: [unclosed\n";
    dir.write("routes.yaml", &broken);
    eventually("a failed reload", || async {
        rauta
            .metric("rauta_config_reloads_total{result=\"failed\"}")
            .await
            == Some(1.0)
    })
    .await;
    let line = rauta.wait_for_log("keeping the current configuration");
    assert!(line.contains("ERROR"), "{line}");
    let error = rauta.wait_for_log("routes.yaml");
    assert!(
        error.contains("document 1") || error.contains("document"),
        "{error}"
    );
    // Still the old table: / goes to web.
    assert_eq!(
        get(rauta.http, "h.example", "/").await.unwrap().backend(),
        Some("web")
    );
    assert_eq!(
        rauta
            .metric("rauta_config_last_reload_success_timestamp_seconds")
            .await
            .unwrap(),
        before
    );

    // A wrongly typed field is an error too: the old table stays.
    dir.write("routes.yaml", &good.replace("number: 80", "number: eighty"));
    eventually("a second failed reload", || async {
        rauta
            .metric("rauta_config_reloads_total{result=\"failed\"}")
            .await
            == Some(2.0)
    })
    .await;
    assert_eq!(
        get(rauta.http, "h.example", "/").await.unwrap().backend(),
        Some("web")
    );

    // A file that cannot be read as text fails the reload as well, and names the file.
    std::fs::write(dir.file("binary.yaml"), [0xff, 0xfe, 0x00, 0x80]).unwrap();
    eventually("a third failed reload", || async {
        rauta
            .metric("rauta_config_reloads_total{result=\"failed\"}")
            .await
            == Some(3.0)
    })
    .await;
    let line = rauta.wait_for_log("cannot read");
    assert!(
        line.contains("binary.yaml") && line.contains("ERROR"),
        "{line}"
    );
    assert_eq!(
        get(rauta.http, "h.example", "/").await.unwrap().backend(),
        Some("web")
    );
    std::fs::remove_file(dir.file("binary.yaml")).unwrap();

    // Fixing the file applies the new content.
    dir.write(
        "routes.yaml",
        &ingress(
            "i",
            &[(Some("h.example"), &[path("/", "Prefix", "api")])],
            None,
        ),
    );
    eventually("the fixed configuration", || async {
        get(rauta.http, "h.example", "/")
            .await
            .is_ok_and(|a| a.backend() == Some("api"))
    })
    .await;
    assert_eq!(
        rauta
            .metric("rauta_config_reloads_total{result=\"ok\"}")
            .await,
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_manifest_at_startup_is_reported_and_the_valid_objects_serve() {
    let (web, _w) = backend("web").await;
    let (api, _a) = backend("api").await;
    let dir = ManifestDir::new();
    dir.write("services.yaml", &base(web, api));
    // Document 0 is a good Ingress, document 1 has a bad pathType, document 2 a field of the wrong type.
    let yaml = ingress(
        "good",
        &[(Some("good.example"), &[path("/", "Prefix", "web")])],
        None,
    ) + &ingress(
        "badtype",
        &[(Some("bad.example"), &[path("/", "Sideways", "web")])],
        None,
    ) + &ingress(
        "badfield",
        &[(Some("worse.example"), &[path("/", "Prefix", "api")])],
        None,
    )
    .replace("number: 80", "number: [80]");
    let routes = dir.write("routes.yaml", &yaml);
    let rauta = Rauta::start(dir.path(), &[]);

    assert_eq!(
        get(rauta.http, "good.example", "/")
            .await
            .unwrap()
            .backend(),
        Some("web")
    );
    assert_eq!(
        get(rauta.http, "bad.example", "/").await.unwrap().status,
        StatusCode::NOT_FOUND
    );
    let file = routes.file_name().unwrap().to_str().unwrap();
    let bad_type = rauta.wait_for_log("pathType");
    assert!(
        bad_type.contains(file) && bad_type.contains("WARN"),
        "{bad_type}"
    );
    let bad_field = rauta.wait_for_log("port.number");
    assert!(bad_field.contains(file), "{bad_field}");
    assert_eq!(rauta.admin_get("/readyz").await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicts_are_logged_and_the_winner_serves() {
    let (web, _w) = backend("web").await;
    let (api, _a) = backend("api").await;
    let dir = ManifestDir::new();
    dir.write("services.yaml", &base(web, api));
    // Same host, path and pathType in two Ingresses: the older wins (equal timestamps: name order).
    dir.write(
        "routes.yaml",
        &(ingress(
            "a-first",
            &[(Some("h.example"), &[path("/", "Prefix", "web")])],
            None,
        ) + &ingress(
            "b-second",
            &[(Some("h.example"), &[path("/", "Prefix", "api")])],
            None,
        )),
    );
    let rauta = Rauta::start(dir.path(), &[]);
    assert_eq!(
        get(rauta.http, "h.example", "/").await.unwrap().backend(),
        Some("web")
    );
    let line = rauta.wait_for_log("conflict lost to");
    assert!(line.contains("WARN") && line.contains("b-second"), "{line}");
}

#[test]
fn an_unreadable_manifest_path_at_startup_is_fatal() {
    let dir = ManifestDir::new();
    let missing = dir.file("missing.yaml");
    let (status, _stdout, stderr) = run_to_end(&[
        "run",
        "--manifests",
        missing.to_str().unwrap(),
        "--http-listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot read") && stderr.contains("missing.yaml"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_directory_replaced_as_a_whole_is_still_watched() {
    let (web, _w) = backend("web").await;
    let (api, _a) = backend("api").await;
    let parent = ManifestDir::new();
    let dir = parent.file("manifests");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("services.yaml"), base(web, api)).unwrap();
    std::fs::write(
        dir.join("routes.yaml"),
        ingress("i", &[(None, &[path("/", "Prefix", "web")])], None),
    )
    .unwrap();
    let rauta = Rauta::start(&dir, &[]);
    assert_eq!(
        get(rauta.http, "h", "/").await.unwrap().backend(),
        Some("web")
    );

    // Build the new tree next to it and swap it in, as a deployment tool would.
    let staged = parent.file("staged");
    std::fs::create_dir(&staged).unwrap();
    std::fs::write(staged.join("services.yaml"), base(web, api)).unwrap();
    std::fs::write(
        staged.join("routes.yaml"),
        ingress("i", &[(None, &[path("/", "Prefix", "api")])], None),
    )
    .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::rename(&staged, &dir).unwrap();
    eventually("the replaced directory's routes", || async {
        get(rauta.http, "h", "/")
            .await
            .is_ok_and(|a| a.backend() == Some("api"))
    })
    .await;

    // Edits inside the new directory are seen too.
    std::fs::write(
        dir.join("routes.yaml"),
        ingress("i", &[(None, &[path("/", "Prefix", "web")])], None),
    )
    .unwrap();
    eventually("an edit inside the new directory", || async {
        get(rauta.http, "h", "/")
            .await
            .is_ok_and(|a| a.backend() == Some("web"))
    })
    .await;
}
