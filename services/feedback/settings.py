"""Feedback settings: environment variables prefixed ``LIFT_FEEDBACK_`` (or CLI flags)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from lift.auth import is_loopback
from lift.settings import ServiceSettings, _split_list


class FeedbackSettings(ServiceSettings):
    """Everything the feedback service is configured with."""

    model_config = SettingsConfigDict(env_prefix="LIFT_FEEDBACK_", extra="forbid")

    http_port: int = Field(8083, ge=0, le=65535, description="HTTP port (no gRPC front).")
    data: Path = Field(
        Path("feedback-data"),
        description="Data directory: the SQLite database (unless db is set) and uploaded videos.",
    )
    db: str | None = Field(
        None,
        description="SQLAlchemy database URL (e.g. postgresql+psycopg://user@host/lift); "
        "default: sqlite:///<data>/feedback.sqlite3.",
    )
    overlap: int = Field(
        2, ge=1, le=50, description="Annotators who rate each item (agreement needs 2 or more)."
    )
    videos: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="Directories or JSONL files to import into the queue at start-up "
        "(comma-separated); the service reads videos only from these and from its data dir.",
    )
    max_video_bytes: int = Field(
        64 * 1024 * 1024, ge=1024, description="Largest video imported or uploaded, bytes."
    )
    max_prompt_chars: int = Field(4000, ge=1, description="Longest prompt, characters.")
    idle_gap_s: float = Field(
        300.0,
        gt=0,
        description="Throughput: a pause between two actions of an annotator longer than "
        "this counts as this long (time away is not active time).",
    )

    @field_validator("videos", mode="before")
    @classmethod
    def _split_videos(cls, v: object) -> object:
        return _split_list(v)

    @model_validator(mode="after")
    def _check(self) -> FeedbackSettings:
        # Without tokens the annotator's name is whatever the X-Lift-Annotator header says:
        # fine on one's own machine, not for anyone who can reach the port.
        if self.auth_file is None and not is_loopback(self.host):
            raise ValueError(
                f"binding {self.host} needs a tokens file: without one anybody could rate as "
                "anybody; set LIFT_AUTH_FILE (`lift auth add alice --scope rate`) or bind "
                "127.0.0.1"
            )
        if self.max_video_bytes * 4 // 3 + 1024 * 1024 > self.body_limit:
            raise ValueError(
                "max_body_bytes (or max_message_bytes) must leave room for an upload of "
                "max_video_bytes in base64 JSON (4/3 of it + 1 MiB)"
            )
        return self

    @property
    def db_url(self) -> str:
        """The database URL: ``db``, or the SQLite file in the data directory."""
        if self.db:
            return self.db
        return f"sqlite:///{(self.data / 'feedback.sqlite3').resolve()}"
