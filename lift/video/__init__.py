"""Video input and output shared by every service: decoding with limits, sample clips."""

from lift.video.decode import DecodedVideo, VideoLimits, decode_video, even_indices

__all__ = ["DecodedVideo", "VideoLimits", "decode_video", "even_indices"]
