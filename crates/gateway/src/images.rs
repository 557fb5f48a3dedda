//! Thumbnails of uploaded images, made off the async workers (the caller runs [`thumbnail`]
//! on a blocking thread) by a decoder with limits: an image whose header claims more pixels
//! than [`MAX_PIXELS`] or more than [`MAX_SIDE`] on a side is refused before anything is
//! decoded (a decompression bomb is a few KiB that claim gigapixels), and the decoder may not
//! allocate more than [`MAX_ALLOC`] however the file lies.
//!
//! The thumbnail is drawn upright (the EXIF orientation applied) and encoded afresh as PNG, so
//! none of the original's metadata (EXIF: camera, GPS position) is in what is served.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageError, ImageReader, Limits};

/// The longest side of a thumbnail, in pixels.
pub const THUMBNAIL_SIDE: u32 = 400;
/// Wider or taller images are refused.
pub const MAX_SIDE: u32 = 16_384;
/// Images of more pixels are refused (a 100-megapixel photo is far beyond any phone's).
pub const MAX_PIXELS: u64 = 100_000_000;
/// What the decoder may allocate for one image.
pub const MAX_ALLOC: u64 = 512 * 1024 * 1024;

/// The raster types a thumbnail is made of (what the decoder is built with).
pub fn decodable(content_type: &str) -> bool {
    matches!(
        content_type,
        "image/png" | "image/jpeg" | "image/gif" | "image/webp"
    )
}

/// What came of an image.
#[derive(Debug)]
pub enum Outcome {
    /// Its upright size and its thumbnail (PNG).
    Thumbnail {
        width: u32,
        height: u32,
        png: Vec<u8>,
    },
    /// The header claims too many pixels, or decoding would allocate too much: refused,
    /// nothing (more) decoded.
    TooLarge,
    /// Not an image the decoder can read (truncated, corrupt): kept as a plain file.
    Unreadable,
}

/// Decodes `bytes` within the limits and draws its thumbnail.
pub fn thumbnail(bytes: &[u8]) -> Outcome {
    let Ok(reader) = ImageReader::new(Cursor::new(bytes)).with_guessed_format() else {
        return Outcome::Unreadable;
    };
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    let mut reader = reader;
    reader.limits(limits);
    let mut decoder = match reader.into_decoder() {
        Ok(decoder) => decoder,
        Err(ImageError::Limits(_)) => return Outcome::TooLarge,
        Err(_) => return Outcome::Unreadable,
    };
    let (width, height) = decoder.dimensions();
    if width > MAX_SIDE || height > MAX_SIDE || u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Outcome::TooLarge;
    }
    let orientation = decoder.orientation().ok();
    let mut img = match DynamicImage::from_decoder(decoder) {
        Ok(img) => img,
        Err(ImageError::Limits(_)) => return Outcome::TooLarge,
        Err(_) => return Outcome::Unreadable,
    };
    if let Some(orientation) = orientation {
        img.apply_orientation(orientation);
    }
    // Never drawn larger than the image itself.
    let thumb = if img.width() <= THUMBNAIL_SIDE && img.height() <= THUMBNAIL_SIDE {
        img.clone()
    } else {
        img.thumbnail(THUMBNAIL_SIDE, THUMBNAIL_SIDE)
    };
    let mut png = Vec::new();
    if thumb
        .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
        .is_err()
    {
        return Outcome::Unreadable;
    }
    Outcome::Thumbnail {
        width: img.width(),
        height: img.height(),
        png,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let img = image::RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
        });
        let mut out = Vec::new();
        DynamicImage::ImageRgb8(img)
            .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
            .expect("encode");
        out
    }

    #[test]
    fn a_thumbnail_fits_the_box_and_keeps_the_shape() {
        let Outcome::Thumbnail { width, height, png } = thumbnail(&png(800, 200)) else {
            panic!("no thumbnail");
        };
        assert_eq!((width, height), (800, 200));
        let t = image::load_from_memory(&png).expect("a PNG");
        assert_eq!((t.width(), t.height()), (400, 100));
        let Outcome::Thumbnail { png, .. } = thumbnail(&super::tests::png(30, 20)) else {
            panic!("no thumbnail");
        };
        let t = image::load_from_memory(&png).expect("a PNG");
        assert_eq!(
            (t.width(), t.height()),
            (30, 20),
            "small images are not blown up"
        );
    }

    #[test]
    fn a_header_that_claims_gigapixels_is_refused_without_decoding() {
        // A valid 1 × 1 PNG whose header then claims `side` × `side`: at 100,000 a side,
        // decoding it would need 30 GB.
        let claiming = |side: u32| {
            let mut bomb = png(1, 1);
            // IHDR's width and height are bytes 16..24 of a PNG.
            bomb[16..20].copy_from_slice(&side.to_be_bytes());
            bomb[20..24].copy_from_slice(&side.to_be_bytes());
            // The header's CRC must match, or the decoder would not read the dimensions.
            let crc = crc32fast::hash(&bomb[12..29]);
            bomb[29..33].copy_from_slice(&crc.to_be_bytes());
            bomb
        };
        assert!(matches!(thumbnail(&claiming(100_000)), Outcome::TooLarge));
        // Within each side's limit but over the pixel count: refused the same way.
        assert!(matches!(thumbnail(&claiming(16_000)), Outcome::TooLarge));
    }

    #[test]
    fn what_is_not_an_image_is_unreadable() {
        assert!(matches!(thumbnail(b"%PDF-1.4 hello"), Outcome::Unreadable));
        let mut cut = png(50, 50);
        cut.truncate(cut.len() / 2);
        assert!(matches!(thumbnail(&cut), Outcome::Unreadable));
    }
}
