//! The Slint dashboard, headless (Slint's testing backend, software renderer) with a pipeline
//! running: elements found by id show the live values from the stages' status and the system
//! diagnostics, the sync details of an uploader running against moto, the upload controls reach
//! the uploader, a click on "Pause recording" pauses the writer (checked in the writer's own
//! status), "Resume" and "Start" resume it, the export dialog sends its request (refused at once
//! with no exporter running), "Stop writer" needs a second click and then stops the writer, and a
//! PNG snapshot of the window is produced. One UI test per binary: Slint allows one platform per
//! process.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::time::{Duration, Instant};

use fleetrec_tests::s3::{sync_section, S3Server, UploaderProcess};
use fleetrec_tests::{status_json, wait_status, Stage, TestEnv};
use nix::sys::signal::Signal;
use viewer::slint::Model;
use viewer::testing::{init_headless_backend, snapshot_png, ElementHandle};
use viewer::ViewerApp;

const BUCKET: &str = "fleetrec-ui";

fn element(app: &ViewerApp, id: &str) -> ElementHandle {
    let qualified = format!("DashboardWindow::{id}");
    let mut found = ElementHandle::find_by_element_id(app.window(), &qualified);
    let e = found.next().unwrap_or_else(|| panic!("no element {id}"));
    assert!(found.next().is_none(), "element id {id} is not unique");
    e
}

fn value(app: &ViewerApp, id: &str) -> String {
    element(app, id).accessible_value().map(|s| s.to_string()).unwrap_or_default()
}

/// Pumps the UI until `pred` holds (panics with the values shown after `timeout`).
fn pump_until(app: &ViewerApp, what: &str, timeout: Duration, pred: impl Fn(&ViewerApp) -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        app.pump();
        if pred(app) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "UI never showed {what}: writer {:?}, ingest {:?}, rate {:?}, messages {:?}, reply {:?}",
            value(app, "writer-card"),
            value(app, "ingest-card"),
            value(app, "rate-tile"),
            value(app, "messages-tile"),
            app.window().get_reply_text()
        );
        std::thread::sleep(Duration::from_millis(30));
    }
}

#[test]
fn dashboard_shows_live_status_and_pause_reaches_the_writer() {
    init_headless_backend().unwrap();
    // The upload endpoint: a local S3 server (moto); small segments so that uploads happen.
    let tmp = tempfile::tempdir().unwrap();
    let server = S3Server::moto(tmp.path());
    server.create_bucket(BUCKET);
    let endpoint_addr = format!("127.0.0.1:{}", server.port);
    let env = TestEnv::new(
        "viewer-ui",
        &format!(
            "wal_segment_size = 1048576\n\n[synthetic]\nrobots = 2\n{}",
            sync_section(&server.endpoint(), BUCKET, "")
        ),
    );
    let config = env.load();

    // The viewer starts before the pipeline: everything shows down, the exporter (started on
    // demand) as not running.
    let app = ViewerApp::new(&config, None).unwrap();
    pump_until(&app, "stages down", Duration::from_secs(10), |a| {
        value(a, "writer-card") == "down" && value(a, "ingest-card") == "down"
    });
    assert_eq!(value(&app, "exporter-card"), "not running");
    assert!(app.window().get_exporter_card().optional);
    assert!(!app.window().get_writer_card().optional);
    assert_eq!(value(&app, "sync-card"), "not running");

    // System diagnostics, measured off the UI thread: CPU, memory, disk, endpoint latency.
    pump_until(&app, "system diagnostics", Duration::from_secs(20), |a| {
        value(a, "cpu-tile").ends_with(" cores") && value(a, "latency-tile").contains(" ms to ")
    });
    let cpu: u32 = value(&app, "cpu-tile").split('%').next().unwrap().parse().unwrap();
    assert!(cpu <= 100, "cpu {cpu}");
    assert!(value(&app, "memory-tile").contains(" used"), "{}", value(&app, "memory-tile"));
    assert!(value(&app, "disk-tile").contains(" free of "), "{}", value(&app, "disk-tile"));
    assert!(value(&app, "latency-tile").ends_with(&endpoint_addr), "{}", value(&app, "latency-tile"));

    let mut writer = Stage::start("writer", &env.config, &[], env.dir.path());
    wait_status("writer", &env.config, Duration::from_secs(30), |_| true);
    let mut ingest = Stage::start("ingest", &env.config, &[], env.dir.path());
    wait_status("writer", &env.config, Duration::from_secs(30), |w| w["messages"].as_u64() > Some(200));
    let mut uploader = UploaderProcess::start(&env.config, env.dir.path());

    pump_until(&app, "live values", Duration::from_secs(30), |a| {
        value(a, "writer-card") == "running"
            && value(a, "ingest-card") == "running"
            && value(a, "rate-tile").ends_with("Hz")
            && !value(a, "rate-tile").starts_with("0.0")
            && a.window().get_topics().row_count() == 5
    });
    assert_eq!(app.window().get_selected_robot(), "robot1");
    // The history plots: a non-zero peak of rate and bandwidth.
    pump_until(&app, "history plots", Duration::from_secs(10), |a| {
        let (r, b) = (value(a, "rate-plot"), value(a, "bandwidth-plot"));
        r.ends_with(" Hz") && !r.starts_with("0.0") && b.ends_with("B/s") && !b.starts_with("0 ")
    });
    assert_eq!(value(&app, "exporter-card"), "not running");

    // Sync details from the uploader's status: online, segments uploaded (the count shown lies
    // between two reads of the uploader's own status), pending, errors, a last success seen by
    // the viewer, and the segments of this robot (segments holding both robots are `mixed`).
    pump_until(&app, "sync online with uploads", Duration::from_secs(60), |a| {
        value(a, "sync-card") == "online"
            && value(a, "uploader-card") == "running"
            && value(a, "sync-last-success").ends_with(" ago")
    });
    let (_, up_before) = status_json("uploader", &env.config);
    let segments = |a: &ViewerApp| -> u64 { value(a, "sync-uploaded").split(' ').next().unwrap().parse().unwrap() };
    let b = up_before["segments"].as_u64().unwrap();
    pump_until(&app, "a newer upload count", Duration::from_secs(30), |a| segments(a) >= b);
    let shown = segments(&app);
    let (_, up_after) = status_json("uploader", &env.config);
    assert!(b <= shown && shown <= up_after["segments"].as_u64().unwrap(), "{shown} vs {up_before} / {up_after}");
    assert!(shown >= 1);
    let pending = value(&app, "sync-pending");
    assert!(pending.contains(" segments · ") && pending.ends_with('B'), "{pending}");
    // Errors: what is shown never exceeds what the uploader counted (a retry under load is fine).
    let errors_text = value(&app, "sync-errors");
    let errors: u64 = errors_text.split(" errors · ").next().unwrap().parse().unwrap();
    assert!(errors_text.contains(" retries · ") && errors_text.ends_with(" corrupt"), "{errors_text}");
    let (_, up_now) = status_json("uploader", &env.config);
    assert!(errors <= up_now["errors"].as_u64().unwrap(), "{errors_text} vs {up_now}");
    let robot_line = value(&app, "sync-robot");
    assert!(robot_line.starts_with("mixed: ") && robot_line.contains(" up, "), "{robot_line}");

    // The received count shown for robot1 lies between two reads of ingest's own status.
    let (_, before) = status_json("ingest", &env.config);
    let b = before["robots"][0]["messages"].as_u64().unwrap();
    pump_until(&app, "a newer message count", Duration::from_secs(10), |a| {
        let shown: u64 = value(a, "messages-tile").split(" / ").next().unwrap().parse().unwrap_or(0);
        shown >= b
    });
    let shown_text = value(&app, "messages-tile");
    let (_, after) = status_json("ingest", &env.config);
    let shown: u64 = shown_text.split(" / ").next().unwrap().parse().unwrap();
    assert_eq!(before["robots"][0]["name"], "robot1");
    assert!(
        b <= shown && shown <= after["robots"][0]["messages"].as_u64().unwrap(),
        "{shown_text} vs {before} / {after}"
    );
    // Rate: the synthetic robot publishes 266 msg/s (200 + 10 + 50 + 5 + 1); accept a wide band.
    let rate: f64 = value(&app, "rate-tile").trim_end_matches(" Hz").parse().unwrap();
    assert!((100.0..=600.0).contains(&rate), "robot1 rate {rate}");
    let lag = value(&app, "lag-tile");
    assert!(lag.ends_with(" msgs"), "lag {lag}");
    let topics = app.window().get_topics();
    let names: Vec<String> = (0..5).map(|i| topics.row_data(i).unwrap().name.to_string()).collect();
    assert!(names.contains(&"/robot1/imu".to_string()), "{names:?}");
    let imu = (0..5).map(|i| topics.row_data(i).unwrap()).find(|r| r.name == "/robot1/imu").unwrap();
    assert_eq!(imu.type_name, "sensor_msgs/msg/Imu");

    // Storage of the robot: the bytes the writer recorded for it, and the free space.
    let (_, writer_status) = status_json("writer", &env.config);
    assert_eq!(writer_status["robots"][0]["name"], "robot1");
    let storage = value(&app, "storage-tile");
    assert!(storage.ends_with("B") && storage != "0 B", "storage {storage}");
    let storage_sub = element(&app, "storage-tile").accessible_description().unwrap_or_default().to_string();
    assert!(storage_sub.contains(" free · ") && storage_sub.ends_with(" sealed"), "{storage_sub}");

    // Last message age: once the count of /robot1/imu (200 Hz) grew under the viewer's eyes, the
    // age is exact (no "> " prefix) and counted in whole seconds.
    pump_until(&app, "an exact age of /robot1/imu", Duration::from_secs(10), |a| {
        let t = a.window().get_topics();
        (0..t.row_count()).filter_map(|i| t.row_data(i)).any(|r| r.name == "/robot1/imu" && !r.age.starts_with('>'))
    });
    let topics = app.window().get_topics();
    for r in (0..topics.row_count()).filter_map(|i| topics.row_data(i)) {
        let age = r.age.trim_start_matches("> ");
        assert!(age == "<1 s" || age.strip_suffix(" s").is_some_and(|n| n.parse::<u64>().is_ok()), "{}: {age}", r.name);
    }
    // Sort by last message age, newest first (column 6, ascending): the 1 Hz topic is last or tied.
    app.window().set_sort_column(6);
    app.window().set_sort_descending(true);
    app.window().invoke_view_changed();
    app.pump();
    let sorted = app.window().get_topics();
    let first = sorted.row_data(0).unwrap();
    let secs = |s: &str| -> u64 { s.trim_start_matches("> ").trim_end_matches(" s").parse().unwrap_or(0) };
    for r in (1..sorted.row_count()).filter_map(|i| sorted.row_data(i)) {
        assert!(
            secs(&first.age) >= secs(&r.age),
            "descending by age: {} {} then {} {}",
            first.name,
            first.age,
            r.name,
            r.age
        );
    }
    app.window().set_sort_column(0);
    app.window().set_sort_descending(false);
    app.window().invoke_view_changed();

    // Filter: only matching topics remain.
    app.window().set_filter_text("scan".into());
    app.window().invoke_view_changed();
    assert_eq!(app.window().get_topics().row_count(), 1);
    app.window().set_filter_text("".into());
    app.window().invoke_view_changed();
    assert_eq!(app.window().get_topics().row_count(), 5);

    // Pause: the button's click reaches the writer, whose own status says paused.
    element(&app, "pause-button").invoke_accessible_default_action();
    pump_until(&app, "writer paused", Duration::from_secs(15), |a| value(a, "writer-card") == "paused");
    let reply = app.window().get_reply_text().to_string();
    assert!(app.window().get_reply_ok(), "{reply}");
    assert!(reply.contains("writer paused"), "{reply}");
    wait_status("writer", &env.config, Duration::from_secs(10), |w| w["state"] == "paused");

    element(&app, "resume-button").invoke_accessible_default_action();
    pump_until(&app, "writer running again", Duration::from_secs(15), |a| value(a, "writer-card") == "running");
    wait_status("writer", &env.config, Duration::from_secs(10), |w| w["state"] == "running");

    // "Start" records too (after another pause).
    element(&app, "pause-button").invoke_accessible_default_action();
    pump_until(&app, "writer paused again", Duration::from_secs(15), |a| value(a, "writer-card") == "paused");
    element(&app, "start-button").invoke_accessible_default_action();
    pump_until(&app, "writer started", Duration::from_secs(15), |a| value(a, "writer-card") == "running");
    assert!(app.window().get_reply_text().contains("writer recording"), "{}", app.window().get_reply_text());
    wait_status("writer", &env.config, Duration::from_secs(10), |w| w["state"] == "running");

    // Export with no exporter service running: refused at once, and said so.
    assert_eq!(value(&app, "export-progress"), "start fleetrec-exporter to export from here");
    app.window().set_export_format("csv".into());
    app.window().set_export_robot("robot1".into());
    app.window().set_export_topics("^/robot1/(imu|pose)$".into());
    element(&app, "export-button").invoke_accessible_default_action();
    pump_until(&app, "the exporter's refusal", Duration::from_secs(10), |a| {
        a.window().get_reply_text().contains("exporter is not running")
    });
    assert!(!app.window().get_reply_ok());
    // A request that does not fit the control request is refused before it is sent.
    app.window().set_export_topics("x".repeat(300).into());
    element(&app, "export-button").invoke_accessible_default_action();
    assert!(app.window().get_reply_text().contains("at most 255"), "{}", app.window().get_reply_text());
    assert!(!app.window().get_reply_ok());
    app.window().set_export_topics("".into());

    // Upload controls reach the uploader: pause, resume, sync now.
    element(&app, "pause-upload-button").invoke_accessible_default_action();
    pump_until(&app, "uploads paused", Duration::from_secs(15), |a| value(a, "sync-card") == "paused");
    assert!(app.window().get_reply_text().contains("uploads paused"), "{}", app.window().get_reply_text());
    wait_status("uploader", &env.config, Duration::from_secs(10), |u| u["state"] == "paused");
    element(&app, "resume-upload-button").invoke_accessible_default_action();
    pump_until(&app, "uploads resumed", Duration::from_secs(15), |a| value(a, "sync-card") == "online");
    wait_status("uploader", &env.config, Duration::from_secs(10), |u| u["state"] == "running");
    element(&app, "sync-button").invoke_accessible_default_action();
    pump_until(&app, "the uploader's answer to sync now", Duration::from_secs(10), |a| {
        let r = a.window().get_reply_text();
        r.contains("rescanning and uploading now") || r.contains("a rescan is already pending")
    });
    assert!(app.window().get_reply_ok());

    let png = snapshot_png(app.window(), 1280.0, 800.0).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert_eq!((width, height), (1280, 800));
    assert!(png.len() > 10_000, "a dashboard full of text compresses to more than {} bytes", png.len());
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("viewer_ui.png");
    std::fs::write(&path, &png).unwrap();
    eprintln!("snapshot: {}", path.display());

    // "Stop writer" asks for a second click; the first one leaves the writer running.
    element(&app, "stop-button").invoke_accessible_default_action();
    assert!(app.window().get_stop_armed());
    app.pump();
    wait_status("writer", &env.config, Duration::from_secs(10), |w| w["state"] == "running");
    element(&app, "stop-button").invoke_accessible_default_action();
    assert!(!app.window().get_stop_armed());
    pump_until(&app, "the writer's answer to stop", Duration::from_secs(10), |a| {
        a.window().get_reply_text().contains("writer stopping")
    });
    // It exits cleanly; the card goes down, the viewer keeps going.
    assert!(writer.wait(Duration::from_secs(20)).success(), "{}", writer.log_text());
    pump_until(&app, "writer down", Duration::from_secs(10), |a| value(a, "writer-card") == "down");
    assert_eq!(value(&app, "lag-tile"), "writer down");

    drop(app);
    ingest.signal(Signal::SIGTERM);
    assert!(ingest.wait(Duration::from_secs(20)).success());
    assert!(uploader.terminate(Duration::from_secs(20)).is_some_and(|s| s.success()), "{}", uploader.log_text());
    drop(server);
}
