"""Wire models of the generator's HTTP API (pydantic), converted at the edge only."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from lift.errors import InvalidInput
from lift.generation import AdapterFiles, GenerationRequest


class GenerationJSON(BaseModel):
    """Body of POST /v1/generations; names follow diffusers' pipeline arguments."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(..., description="The text to generate a video of.")
    negative_prompt: str = Field("", description="What the video should not show.")
    seed: int | None = Field(None, description="Noise seed; unset picks one (reported back).")
    num_frames: int | None = Field(None, description="Frames; default from GET /v1/info.")
    height: int | None = Field(None, description="Frame height, pixels (even).")
    width: int | None = Field(None, description="Frame width, pixels (even).")
    num_inference_steps: int | None = Field(None, description="Denoising steps.")
    guidance_scale: float | None = Field(None, description="Classifier-free guidance scale.")
    fps: float | None = Field(None, description="Frame rate of the video file.")
    adapter_version: str = Field(
        "", description='Adapter version: "" = current, "base" = none, or a loaded label.'
    )

    def to_request(self) -> GenerationRequest:
        """The engine's request."""
        return GenerationRequest(**self.model_dump())


class AdapterJSON(BaseModel):
    """Body of POST /v1/adapters as JSON: a file:// URI, or the files in base64."""

    model_config = ConfigDict(extra="forbid")

    version: str = Field(..., description="New version label, e.g. 'run-7/step-200'.")
    uri: str | None = Field(
        None, description="file:// URI of a peft adapter directory under the adapter root."
    )
    weights_b64: str | None = Field(None, description="peft's adapter_model.safetensors, base64.")
    config: dict[str, Any] | None = Field(
        None, description="peft's adapter_config.json (optional with weights_b64)."
    )

    def source(self) -> AdapterFiles | str:
        """The engine's view: files, or a URI."""
        if (self.uri is None) == (self.weights_b64 is None):
            raise InvalidInput("set exactly one of uri or weights_b64")
        if self.uri is not None:
            if self.config is not None:
                raise InvalidInput("config goes with weights_b64; a uri brings its own")
            return self.uri
        try:
            weights = base64.b64decode(self.weights_b64 or "", validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput("weights_b64 is not valid base64") from None
        return AdapterFiles(weights, json.dumps(self.config) if self.config is not None else None)
