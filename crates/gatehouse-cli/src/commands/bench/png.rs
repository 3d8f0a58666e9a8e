//! The chart as a PNG: the shapes of `plot::chart` rasterised at twice their size, with the
//! public-domain 8×8 bitmap font for labels. Every shape is an axis-aligned rectangle, a
//! straight line or a line of ASCII text, so a small rasteriser is all it takes; no SVG
//! renderer or font engine goes into the binary for one chart.

use anyhow::{Context, Result};

use super::plot::{Anchor, HEIGHT, INK, Rgb, Shape, WIDTH};

/// Pixels per chart unit: the PNG is 1920 × 960.
const SCALE: f64 = 2.0;
/// Font pixels per glyph pixel for a label of `size` chart units: the 8×8 glyph drawn
/// `size * SCALE / 10` rounded, so 12-unit labels are 16 px tall and the 15-unit title 24 px.
fn glyph_zoom(size: f64) -> usize {
    ((size * SCALE / 10.0).round() as usize).max(1)
}

pub fn png(shapes: &[Shape]) -> Result<Vec<u8>> {
    let mut canvas = Canvas::new((WIDTH * SCALE) as usize, (HEIGHT * SCALE) as usize);
    for shape in shapes {
        match shape {
            Shape::Rect { x, y, w, h, fill } => {
                canvas.fill(*x * SCALE, *y * SCALE, *w * SCALE, *h * SCALE, *fill);
            }
            Shape::Line {
                x1,
                y1,
                x2,
                y2,
                stroke,
                width,
            } => {
                canvas.line(
                    (*x1 * SCALE, *y1 * SCALE),
                    (*x2 * SCALE, *y2 * SCALE),
                    (*width * SCALE).max(1.0),
                    *stroke,
                );
            }
            Shape::Text {
                x,
                y,
                size,
                anchor,
                text,
            } => {
                canvas.text(*x * SCALE, *y * SCALE, glyph_zoom(*size), *anchor, text);
            }
        }
    }
    canvas.encode()
}

struct Canvas {
    width: usize,
    height: usize,
    /// RGB, row by row.
    pixels: Vec<u8>,
}

impl Canvas {
    fn new(width: usize, height: usize) -> Self {
        Self {
            width,
            height,
            pixels: vec![0xff; width * height * 3],
        }
    }

    fn put(&mut self, x: i64, y: i64, colour: Rgb) {
        let (Ok(x), Ok(y)) = (usize::try_from(x), usize::try_from(y)) else {
            return;
        };
        if x >= self.width || y >= self.height {
            return;
        }
        let at = (y * self.width + x) * 3;
        if let Some(pixel) = self.pixels.get_mut(at..at + 3) {
            pixel.copy_from_slice(&[colour.0, colour.1, colour.2]);
        }
    }

    fn fill(&mut self, x: f64, y: f64, w: f64, h: f64, colour: Rgb) {
        let (left, top) = (x.round() as i64, y.round() as i64);
        let (right, bottom) = ((x + w).round() as i64, (y + h).round() as i64);
        for py in top.max(0)..bottom.min(self.height as i64) {
            for px in left.max(0)..right.min(self.width as i64) {
                self.put(px, py, colour);
            }
        }
    }

    /// A line `width` pixels thick: a square pen stepped along the longer axis.
    fn line(&mut self, from: (f64, f64), to: (f64, f64), width: f64, colour: Rgb) {
        let (dx, dy) = (to.0 - from.0, to.1 - from.1);
        let steps = dx.abs().max(dy.abs()).ceil().max(1.0);
        let half = width / 2.0;
        for step in 0..=(steps as i64) {
            let t = step as f64 / steps;
            let (x, y) = (from.0 + dx * t, from.1 + dy * t);
            self.fill(x - half, y - half, width, width, colour);
        }
    }

    /// ASCII text with its baseline at `y`; anything else is drawn as `?`.
    fn text(&mut self, x: f64, y: f64, zoom: usize, anchor: Anchor, text: &str) {
        let advance = 8 * zoom;
        let span = (text.chars().count() * advance) as f64;
        let left = match anchor {
            Anchor::Start => x,
            Anchor::Middle => x - span / 2.0,
            Anchor::End => x - span,
        }
        .round() as i64;
        // The font's baseline is under its seventh row.
        let top = y.round() as i64 - (7 * zoom) as i64;
        for (i, c) in text.chars().enumerate() {
            let code = if c.is_ascii() {
                c as usize
            } else {
                '?' as usize
            };
            let Some(rows) = font8x8::legacy::BASIC_LEGACY.get(code) else {
                continue;
            };
            let glyph_left = left + (i * advance) as i64;
            for (row, bits) in rows.iter().enumerate() {
                for column in 0..8 {
                    if bits & (1 << column) == 0 {
                        continue;
                    }
                    for zy in 0..zoom {
                        for zx in 0..zoom {
                            self.put(
                                glyph_left + (column * zoom + zx) as i64,
                                top + (row * zoom + zy) as i64,
                                INK,
                            );
                        }
                    }
                }
            }
        }
    }

    fn encode(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let width = u32::try_from(self.width).context("chart width")?;
        let height = u32::try_from(self.height).context("chart height")?;
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().context("writing the PNG header")?;
        writer
            .write_image_data(&self.pixels)
            .context("writing the PNG image")?;
        writer.finish().context("finishing the PNG")?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8]) -> (png::OutputInfo, Vec<u8>) {
        let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
            .read_info()
            .unwrap();
        let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut pixels).unwrap();
        pixels.truncate(info.buffer_size());
        (info, pixels)
    }

    fn pixel(info: &png::OutputInfo, pixels: &[u8], x: usize, y: usize) -> Rgb {
        let at = (y * info.width as usize + x) * 3;
        Rgb(pixels[at], pixels[at + 1], pixels[at + 2])
    }

    #[test]
    fn shapes_land_where_the_chart_puts_them_at_twice_the_size() {
        let red = Rgb(0xe1, 0x57, 0x59);
        let shapes = [
            Shape::Rect {
                x: 10.0,
                y: 20.0,
                w: 30.0,
                h: 40.0,
                fill: red,
            },
            Shape::Text {
                x: 100.0,
                y: 100.0,
                size: 12.0,
                anchor: Anchor::Start,
                text: "I".into(),
            },
        ];
        let (info, pixels) = decode(&png(&shapes).unwrap());
        assert_eq!((info.width, info.height), (1920, 960));
        assert_eq!(
            pixel(&info, &pixels, 20, 40),
            red,
            "the rectangle's top-left corner"
        );
        assert_eq!(
            pixel(&info, &pixels, 79, 119),
            red,
            "its bottom-right corner"
        );
        assert_eq!(
            pixel(&info, &pixels, 80, 120),
            Rgb(0xff, 0xff, 0xff),
            "just outside"
        );
        let inked = (0..16)
            .flat_map(|x| (200 - 14..200 + 2).map(move |y| (200 + x, y)))
            .filter(|(x, y)| pixel(&info, &pixels, *x, *y) == INK)
            .count();
        assert!(
            inked > 10,
            "the glyph I is drawn above its baseline ({inked} pixels)"
        );
    }

    #[test]
    fn text_off_the_canvas_and_outside_ascii_is_drawn_without_panicking() {
        let shapes = [
            Shape::Text {
                x: -50.0,
                y: -5.0,
                size: 12.0,
                anchor: Anchor::End,
                text: "µs → ✓".into(),
            },
            Shape::Line {
                x1: 950.0,
                y1: 470.0,
                x2: 2000.0,
                y2: 900.0,
                stroke: INK,
                width: 3.0,
            },
        ];
        let (info, _) = decode(&png(&shapes).unwrap());
        assert_eq!(info.width, 1920);
    }
}
