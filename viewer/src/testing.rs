//! Headless UI testing support (feature `testing`): Slint's testing backend with the software
//! renderer, and PNG snapshots of the window. One platform per process: call
//! [`init_headless_backend`] once, before creating a [`crate::ViewerApp`].

use slint::ComponentHandle;

use crate::error::{Result, ViewerError};
use crate::ui::DashboardWindow;

pub use i_slint_backend_testing::ElementHandle;

/// Installs the testing backend: no event loop (the test calls [`crate::ViewerApp::pump`]),
/// mock time, and a real software rasterizer so snapshots can be taken.
pub fn init_headless_backend() -> Result<()> {
    let backend = i_slint_backend_testing::TestingBackend::new(i_slint_backend_testing::TestingBackendOptions {
        mock_time: true,
        threading: false,
        renderer_name: Some("software".into()),
    });
    slint::platform::set_platform(Box::new(backend)).map_err(|e| ViewerError::Ui(e.to_string()))
}

/// Renders the window (at `width` x `height` logical pixels) and encodes it as PNG.
pub fn snapshot_png(window: &DashboardWindow, width: f32, height: f32) -> Result<Vec<u8>> {
    window.window().set_size(slint::LogicalSize::new(width, height));
    window.show().map_err(|e| ViewerError::Ui(e.to_string()))?;
    let buffer = window.window().take_snapshot().map_err(|e| ViewerError::Ui(e.to_string()))?;
    let mut png_bytes = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut png_bytes, buffer.width(), buffer.height());
        encoder.set_color(png::ColorType::Rgba);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(|e| ViewerError::Ui(format!("png: {e}")))?;
        writer.write_image_data(buffer.as_bytes()).map_err(|e| ViewerError::Ui(format!("png: {e}")))?;
    }
    Ok(png_bytes)
}
