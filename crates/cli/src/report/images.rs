//! Pictures of examples: dense examples shaped like images become PNG data URIs, drawn at a
//! larger size without smoothing by the page's CSS (`image-rendering: pixelated`).

use base64::Engine;

/// How to read one dense example as a picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageGeometry {
    /// 1 (grey) or 3 (RGB, channel-major like CIFAR-10).
    pub channels: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
}

impl ImageGeometry {
    /// The picture shape of examples of `shape`: `[c, h, w]` with 1 or 3 channels, `[h, w]`, or a
    /// flat square (`[64]` is an 8x8 digit, `[784]` an MNIST image), `[3072]` a CIFAR image.
    /// Other shapes (tabular data) have none.
    pub fn of_shape(shape: &[usize]) -> Option<ImageGeometry> {
        let g = |channels, height, width| {
            Some(ImageGeometry {
                channels,
                height,
                width,
            })
        };
        match *shape {
            [c, h, w] if (c == 1 || c == 3) && h >= 4 && w >= 4 => g(c, h, w),
            [h, w] if h >= 4 && w >= 4 => g(1, h, w),
            [3072] => g(3, 32, 32),
            [d] => {
                let s = (d as f64).sqrt().round() as usize;
                (s >= 4 && s * s == d && (d == 64 || d == 256 || d == 784 || d == 1024))
                    .then_some(ImageGeometry {
                        channels: 1,
                        height: s,
                        width: s,
                    })
                    .or(None)
            }
            _ => None,
        }
    }

    /// Values per example.
    pub fn len(&self) -> usize {
        self.channels * self.height * self.width
    }
}

/// Encodes one example (`values`, channel-major) as a PNG, mapping `lo..hi` to `0..255`.
///
/// # Panics
/// If `values.len()` differs from the geometry's (the caller slices by it).
pub fn png(values: &[f32], g: ImageGeometry, lo: f32, hi: f32) -> Vec<u8> {
    assert_eq!(values.len(), g.len(), "one example's values");
    let span = if hi > lo { hi - lo } else { 1.0 };
    let byte = |v: f32| (((v - lo) / span).clamp(0.0, 1.0) * 255.0).round() as u8;
    let plane = g.height * g.width;
    let pixels: Vec<u8> = match g.channels {
        1 => values.iter().map(|&v| byte(v)).collect(),
        _ => (0..plane)
            .flat_map(|p| (0..3).map(move |c| (c, p)))
            .map(|(c, p)| byte(values[c * plane + p]))
            .collect(),
    };
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, g.width as u32, g.height as u32);
        enc.set_color(if g.channels == 1 {
            png::ColorType::Grayscale
        } else {
            png::ColorType::Rgb
        });
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().expect("writing into memory cannot fail");
        w.write_image_data(&pixels)
            .expect("the pixel buffer has the header's size");
    }
    out
}

/// `data:image/png;base64,...` of a PNG.
pub fn data_uri(png: &[u8]) -> String {
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_that_are_pictures() {
        let g = |c, h, w| {
            Some(ImageGeometry {
                channels: c,
                height: h,
                width: w,
            })
        };
        assert_eq!(ImageGeometry::of_shape(&[64]), g(1, 8, 8));
        assert_eq!(ImageGeometry::of_shape(&[1, 28, 28]), g(1, 28, 28));
        assert_eq!(ImageGeometry::of_shape(&[3, 32, 32]), g(3, 32, 32));
        assert_eq!(ImageGeometry::of_shape(&[3072]), g(3, 32, 32));
        assert_eq!(ImageGeometry::of_shape(&[30]), None, "tabular");
        assert_eq!(
            ImageGeometry::of_shape(&[36]),
            None,
            "a square count alone is not an image"
        );
    }

    #[test]
    fn png_round_trips_through_a_decoder() {
        let geo = ImageGeometry {
            channels: 3,
            height: 4,
            width: 5,
        };
        let values: Vec<f32> = (0..geo.len()).map(|v| v as f32).collect();
        let bytes = png(&values, geo, 0.0, (geo.len() - 1) as f32);
        let dec = png::Decoder::new(std::io::Cursor::new(&bytes));
        let mut r = dec.read_info().unwrap();
        let mut buf = vec![0; r.output_buffer_size()];
        let info = r.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (5, 4));
        // Pixel 0 is (R, G, B) = planes 0, 1, 2 at position 0: values 0, 20, 40 of 0..59.
        assert_eq!(&buf[..3], &[0, 86, 173]);
        assert!(data_uri(&bytes).starts_with("data:image/png;base64,iVBORw0KGgo"));
    }
}
