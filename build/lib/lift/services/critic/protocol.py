"""Wire models of the critic's HTTP API (pydantic), converted at the edge only."""

from __future__ import annotations

import base64
import binascii

from pydantic import BaseModel, ConfigDict, Field

from lift.errors import InvalidInput
from lift.services.critic.engine import VideoSource


class VideoJSON(BaseModel):
    """A video in a JSON body: a URI or base64 bytes."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(..., description="The text the video was generated from.")
    video_uri: str | None = Field(
        None, description="file:// (under the server's root) or http(s)://"
    )
    video_b64: str | None = Field(None, description="The encoded video file, base64.")

    def source(self) -> VideoSource:
        """The engine's view of the video."""
        if (self.video_uri is None) == (self.video_b64 is None):
            raise InvalidInput("set exactly one of video_uri or video_b64")
        if self.video_b64 is not None:
            try:
                data = base64.b64decode(self.video_b64, validate=True)
            except (binascii.Error, ValueError):
                raise InvalidInput("video_b64 is not valid base64") from None
            return VideoSource(data=data)
        return VideoSource(uri=self.video_uri)


class ScoreJSON(BaseModel):
    """Body of POST /v1/scores."""

    model_config = ConfigDict(extra="forbid")

    items: list[VideoJSON] = Field(..., description="Videos and prompts to score.")
