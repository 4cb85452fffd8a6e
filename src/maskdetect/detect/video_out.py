"""Annotated videos that play in a browser: H.264 (yuv420p, moov atom first) in mp4, with PyAV.

PyAV's wheels ship FFmpeg with libx264, so no system FFmpeg is needed. Where H.264 cannot be
written (a PyAV without an H.264 encoder, or one that refuses the size), the writer falls back to
OpenCV's mp4v and says so once: that file plays in VLC and most desktop players, not in browsers.
Any frame size is written: odd sides are cropped to even (yuv420p), a side of 1 is stretched to 2
and a side over `MAX_SIDE` is scaled down with the other (65000x1 frames make a 16384x2 video).

The file is written under a temporary name and published by `VideoSink.publish`; `discard`
removes it, so an abandoned run never leaves half a video under the final name.
"""

from __future__ import annotations

import logging
import os
from fractions import Fraction
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

H264_ENCODERS = ("libx264", "libopenh264", "h264")
# libx264 refuses a side over 16384 (avcodec_open2 fails), whatever the level.
MAX_SIDE = 16384


class VideoWriteError(OSError):
    """No encoder here writes this video (the annotated copy is left out; the detections are not)."""


def video_size(width: int, height: int) -> tuple[int, int]:
    """The size a `width` x `height` frame is written at: even sides of 2 to `MAX_SIDE` pixels.

    >>> video_size(321, 241), video_size(65000, 1), video_size(8, 65000)
    ((320, 240), (16384, 2), (2, 16384))
    """
    scale = min(1.0, MAX_SIDE / max(width, height))
    sides = (max(2, round(width * scale)), max(2, round(height * scale)))
    return sides[0] - sides[0] % 2, sides[1] - sides[1] % 2


def h264_encoder() -> str | None:
    """The first H.264 encoder PyAV offers here, or None (then videos are written as mp4v).

    >>> h264_encoder() in (*H264_ENCODERS, None)
    True
    """
    try:
        import av
    except ImportError:
        return None
    for name in H264_ENCODERS:
        try:
            av.codec.Codec(name, "w")
        except (av.codec.codec.UnknownCodecError, ValueError):
            continue
        return name
    return None


class VideoSink:
    """Write RGB frames to `target` (mp4): H.264 when PyAV can, else mp4v.

    Args:
        target: the final path (published by `publish`).
        fps: frames per second.
        codec: "h264" (with the mp4v fallback) or "mp4v".

    Attributes:
        codec: what is being written: "h264 (libx264)" or "mp4v".
    """

    def __init__(self, target: str | os.PathLike, fps: float, codec: str = "h264") -> None:
        if codec not in ("h264", "mp4v"):
            raise ValueError(f"codec must be 'h264' or 'mp4v', got {codec!r}")
        self.target = Path(target)
        self.tmp = self.target.with_name(f".{self.target.stem}.part.mp4")  # the suffix picks the container
        self.fps = fps if fps and fps > 0 else 25.0
        self.encoder = h264_encoder() if codec == "h264" else None
        if codec == "h264" and self.encoder is None:
            log.warning("%s: no H.264 encoder in PyAV here; writing mp4v, which browsers do not play",
                        self.target)
        self.codec = f"h264 ({self.encoder})" if self.encoder else "mp4v"
        self._container = self._stream = self._cv_writer = None

    def write(self, rgb: np.ndarray) -> None:
        """Append one RGB frame (H x W x 3, uint8); the first frame sets the size (`video_size`).

        Raises:
            VideoWriteError: neither H.264 nor mp4v can be written at this size.
        """
        if self._container is None and self._cv_writer is None:
            self._open(rgb.shape[1], rgb.shape[0])
        width, height = self._size
        if rgb.shape[1] < width or rgb.shape[0] < height or max(rgb.shape[:2]) > MAX_SIDE:
            import cv2

            rgb = cv2.resize(rgb, self._size, interpolation=cv2.INTER_AREA)
        rgb = np.ascontiguousarray(rgb[:height, :width])  # odd sides: one column or row off
        if self._container is not None:
            import av

            for packet in self._stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                self._container.mux(packet)
        else:
            import cv2

            self._cv_writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))

    def _open(self, width: int, height: int) -> None:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self._size = video_size(width, height)
        if self.encoder:
            import av

            try:
                self._open_h264()
                return
            except (av.error.FFmpegError, ValueError) as err:
                if self._container is not None:
                    self._container.close()
                self._container = self._stream = None
                log.warning("%s: H.264 (%s) cannot write %dx%d frames (%s); writing mp4v, which browsers "
                            "do not play", self.target, self.encoder, *self._size, err)
                self.encoder, self.codec = None, "mp4v"
        import cv2

        writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, self._size)
        if not writer.isOpened():
            writer.release()
            self.tmp.unlink(missing_ok=True)
            raise VideoWriteError(f"{self.target}: neither H.264 nor mp4v can be written here at "
                                  f"{self._size[0]}x{self._size[1]} (frames of {width}x{height})")
        self._cv_writer = writer

    def _open_h264(self) -> None:
        import av

        self._container = av.open(str(self.tmp), "w", format="mp4", options={"movflags": "+faststart"})
        stream = self._container.add_stream(self.encoder, rate=Fraction(self.fps).limit_denominator(1001))
        stream.width, stream.height = self._size
        stream.pix_fmt = "yuv420p"
        if self.encoder == "libx264":
            stream.options = {"preset": "veryfast", "crf": "23"}
        stream.codec_context.open()  # here, not at the first encode: a size it refuses falls back
        self._stream = stream

    def _close(self) -> bool:
        wrote = self._container is not None or self._cv_writer is not None
        if self._container is not None:
            try:
                for packet in self._stream.encode():
                    self._container.mux(packet)
            finally:
                self._container.close()
                self._container = None
        if self._cv_writer is not None:
            self._cv_writer.release()
            self._cv_writer = None
        return wrote

    def publish(self) -> Path | None:
        """Finish the file and move it to `target`; None when no frame was written."""
        if not self._close():
            return None
        os.replace(self.tmp, self.target)
        return self.target

    def discard(self) -> None:
        """Close and delete the partial file."""
        try:
            self._close()
        finally:
            self.tmp.unlink(missing_ok=True)
