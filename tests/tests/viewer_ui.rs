//! The Slint dashboard, headless (Slint's testing backend, software renderer) with a pipeline
//! running: elements found by id show the live values from the stages' status, a click on
//! "Pause recording" pauses the writer (checked in the writer's own status) and "Resume"
//! resumes it, and a PNG snapshot of the window is produced. One UI test per binary: Slint
//! allows one platform per process.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::time::{Duration, Instant};

use fleetrec_tests::{status_json, wait_status, Stage, TestEnv};
use nix::sys::signal::Signal;
use viewer::slint::Model;
use viewer::testing::{init_headless_backend, snapshot_png, ElementHandle};
use viewer::ViewerApp;

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
    let env = TestEnv::new("viewer-ui", "[synthetic]\nrobots = 2\n");
    let config = env.load();

    // The viewer starts before the pipeline: everything shows down.
    let app = ViewerApp::new(&config.pipeline, None).unwrap();
    pump_until(&app, "stages down", Duration::from_secs(10), |a| {
        value(a, "writer-card") == "down" && value(a, "ingest-card") == "down"
    });

    let mut writer = Stage::start("writer", &env.config, &[], env.dir.path());
    wait_status("writer", &env.config, Duration::from_secs(30), |_| true);
    let mut ingest = Stage::start("ingest", &env.config, &[], env.dir.path());
    wait_status("writer", &env.config, Duration::from_secs(30), |w| w["messages"].as_u64() > Some(200));

    pump_until(&app, "live values", Duration::from_secs(30), |a| {
        value(a, "writer-card") == "running"
            && value(a, "ingest-card") == "running"
            && value(a, "rate-tile").ends_with("Hz")
            && !value(a, "rate-tile").starts_with("0.0")
            && a.window().get_topics().row_count() == 5
    });
    assert_eq!(app.window().get_selected_robot(), "robot1");
    assert_eq!(value(&app, "uploader-card"), "down");
    assert_eq!(value(&app, "exporter-card"), "down");

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

    // Sync now with no uploader: refused at once, and the refusal is shown.
    element(&app, "sync-button").invoke_accessible_default_action();
    pump_until(&app, "the uploader's refusal", Duration::from_secs(10), |a| {
        a.window().get_reply_text().contains("uploader is not running")
    });
    assert!(!app.window().get_reply_ok());

    let png = snapshot_png(app.window(), 1120.0, 720.0).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert_eq!((width, height), (1120, 720));
    assert!(png.len() > 10_000, "a dashboard full of text compresses to more than {} bytes", png.len());
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("viewer_ui.png");
    std::fs::write(&path, &png).unwrap();
    eprintln!("snapshot: {}", path.display());

    // Killing the writer: the card goes down; the viewer keeps going.
    writer.signal(Signal::SIGKILL);
    writer.wait(Duration::from_secs(10));
    pump_until(&app, "writer down", Duration::from_secs(10), |a| value(a, "writer-card") == "down");
    assert_eq!(value(&app, "lag-tile"), "writer down");

    drop(app);
    ingest.signal(Signal::SIGTERM);
    assert!(ingest.wait(Duration::from_secs(20)).success());
}
