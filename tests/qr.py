"""Reading QR codes back from images in tests, with a real decoder (zxing-cpp)."""

from __future__ import annotations

import io
from pathlib import Path

import PIL.Image
import zxingcpp


def decode_qr(image: bytes | Path) -> zxingcpp.Barcode:
    """The one QR code in a PNG (bytes or a file). Only QR codes are looked for: asked for
    any format, zxing now and then also "finds" an EAN-13 inside a dense QR code."""
    source = PIL.Image.open(io.BytesIO(image) if isinstance(image, bytes) else image)
    with source:
        found = zxingcpp.read_barcodes(source, formats=zxingcpp.BarcodeFormat.QRCode)
    assert len(found) == 1, f"expected one QR code, found {len(found)}"
    return found[0]
