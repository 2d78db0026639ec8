"""`lift feedback serve|export|sample`: collect human ratings, export them as LiFT-HRA."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any

import typer

from lift.cli.common import (
    CaFileOpt,
    ClientCertOpt,
    ClientKeyOpt,
    TlsOpt,
    TokenOpt,
    credentials,
    fail,
    needs_extra,
    run_service,
    settings_or_exit,
)

feedback_app = typer.Typer(
    help="The feedback service: people rate videos with reasons; LiFT-HRA export.",
    no_args_is_help=True,
)

DataOpt = Annotated[
    Path | None,
    typer.Option(
        "--data",
        help="Data directory: the SQLite file (without --db) and uploads [./feedback-data]",
    ),
]
DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="SQLAlchemy database URL, e.g. postgresql+psycopg://user@host/lift [sqlite in --data]",
    ),
]


@feedback_app.command("serve")
def serve(
    videos: Annotated[
        list[Path] | None,
        typer.Option(
            "--videos",
            help="Directory of videos (prompts from prompts.jsonl/items.jsonl or <stem>.txt) "
            "or a JSONL file of {video, prompt}; repeatable; imported at start, idempotently",
        ),
    ] = None,
    data: DataOpt = None,
    db: DbOpt = None,
    overlap: Annotated[
        int | None, typer.Option(help="Annotators who rate each item [2]", min=1, max=50)
    ] = None,
    http_port: Annotated[
        int | None, typer.Option(help="HTTP port [8083]; 0 = any free one", min=0, max=65535)
    ] = None,
    host: Annotated[str | None, typer.Option(help="Bind address [127.0.0.1]")] = None,
) -> None:
    """Serve the annotation page (/), the overview (/overview) and the rating API.

    Annotators sign in with their own token
    (`lift auth add NAME --scope rate`; the overview needs admin).
    Without LIFT_AUTH_FILE it binds loopback only and each annotator
    types a name on the page. Settings also from LIFT_FEEDBACK_*.
    """
    with needs_extra("feedback", "lift feedback serve"):
        from lift.services.feedback.queue import ImportRefused, collect
        from lift.services.feedback.settings import FeedbackSettings

        settings = settings_or_exit(
            "feedback",
            FeedbackSettings,
            {
                "videos": videos or None,
                "data": data,
                "db": db,
                "overlap": overlap,
                "http_port": http_port,
                "host": host,
            },
        )
        for source in settings.videos:  # refuse a bad source before binding anything
            try:
                collect(source)
            except ImportRefused as exc:
                fail(str(exc), code=2)
        from lift.services.feedback.server import build_feedback

        run_service("feedback", settings, build_feedback)


def _open_store(data: Path | None, db: str | None) -> Any:
    from lift.services.feedback.store import Store

    data = data or Path("feedback-data")  # uploaded videos live here with any database
    if db is None:
        file = data / "feedback.sqlite3"
        if not file.is_file():
            fail(
                f"no feedback database at {file}: pass the --data directory "
                "`lift feedback serve` used, or --db URL",
                code=2,
            )
        db = f"sqlite:///{file.resolve()}"
    try:
        return Store(db, data)
    except ValueError as exc:
        fail(str(exc), code=2)


@feedback_app.command("export")
def export(
    out: Annotated[Path, typer.Option("--out", help="Folder for train.jsonl, test.jsonl, videos/")],
    data: DataOpt = None,
    db: DbOpt = None,
    test_fraction: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of videos in test.jsonl")
    ] = 0.2,
    seed: Annotated[int, typer.Option(help="Seed of the train/test split")] = 0,
    consensus: Annotated[
        str,
        typer.Option(
            help="majority: the label most annotators gave (ties left out); all: only "
            "labels every annotator of the item gave"
        ),
    ] = "majority",
    templates: Annotated[
        str | None,
        typer.Option(help="Template preset or file for the questions [built-in LiFT templates]"),
    ] = None,
) -> None:
    """Write the ratings as LiFT-HRA JSON lines, split into train and test by video.

    `lift hra validate OUT/train.jsonl` reads them; `lift critic train --data
    OUT/train.jsonl --eval OUT/test.jsonl` learns from them.
    """
    if consensus not in ("majority", "all"):
        fail(f"--consensus must be majority or all, got {consensus!r}", code=2)
    with needs_extra("feedback", "lift feedback export"):
        from lift.services.feedback.export import export_hra
        from lift.templates import TemplateError, load_templates

        try:
            tpl = load_templates(templates)
        except TemplateError as exc:
            fail(str(exc), code=2)
        store = _open_store(data, db)
        try:
            summary = export_hra(store, out, tpl, test_fraction, seed, consensus)  # type: ignore[arg-type]
        except ValueError as exc:
            fail(str(exc), code=2)
        except OSError as exc:
            fail(f"cannot write {out}: {exc}")
        finally:
            store.close()
    if summary.train_records + summary.test_records == 0:
        fail(
            f"nothing to export ({summary.line()}); nothing was written to {out}: rate "
            "some items first",
            code=1,
        )
    typer.echo(f"{out}: {summary.line()}")
    if summary.flagged:
        typer.echo(
            f"flagged by an annotator, exported anyway: "
            f"{', '.join(summary.flagged[:10])}{' ...' if len(summary.flagged) > 10 else ''}; "
            "read the notes on /overview (GET /v1/overview) before training on them",
            err=True,
        )
    if summary.missing:
        typer.echo(
            f"left out (video gone or changed since it was queued): "
            f"{', '.join(summary.missing[:10])}{' ...' if len(summary.missing) > 10 else ''}; "
            "uploaded videos live in the --data directory the service used",
            err=True,
        )


_PROMPT_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}")


def _read_prompts(path: Path) -> list[tuple[str, str]]:
    """(id, text) per prompt: JSON lines of `lift prompts make` (the detailed text), or plain."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read {path}: {exc}", code=2)
    out = []
    for n, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            continue
        if text.startswith("{"):
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                fail(f"{path}:{n}: invalid JSON ({exc.msg})", code=2)
            prompt = obj.get("detailed") or obj.get("prompt") if isinstance(obj, dict) else None
            if not isinstance(prompt, str) or not prompt.strip():
                fail(f'{path}:{n}: needs "detailed" or "prompt" text', code=2)
            pid = str(obj.get("id") or f"p{n:05d}")
            if not _PROMPT_ID.fullmatch(pid):
                fail(
                    f'{path}:{n}: "id" {pid[:80]!r} must be 1-64 letters, digits, "_", "-" or '
                    '"." (not starting with "."): it names the video files',
                    code=2,
                )
            out.append((pid, prompt.strip()))
        else:
            out.append((f"p{n:05d}", text))
    if not out:
        fail(f"{path} holds no prompts", code=2)
    seen: set[str] = set()
    for pid, _ in out:
        if pid in seen:
            fail(f'{path}: the id {pid!r} is on two lines; give every prompt its own "id"', code=2)
        seen.add(pid)
    return out


@feedback_app.command("sample")
def sample(
    prompts: Annotated[
        Path, typer.Option("--prompts", help="`lift prompts make` JSON lines, or one prompt a line")
    ],
    generator: Annotated[str, typer.Option("--generator", help="Generator gRPC address")],
    seeds: Annotated[int, typer.Option("--seeds", min=1, max=64, help="Videos per prompt")] = 1,
    seed_base: Annotated[int, typer.Option(help="First seed; then +1 per video")] = 0,
    feedback: Annotated[
        str | None,
        typer.Option("--feedback", help="Feedback service URL to upload to (POST /v1/items)"),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Instead: write OUT/videos/*.mp4 and OUT/items.jsonl"),
    ] = None,
    num_frames: Annotated[int | None, typer.Option(help="Frames [model default]")] = None,
    height: Annotated[int | None, typer.Option(help="Height, px [model default]")] = None,
    width: Annotated[int | None, typer.Option(help="Width, px [model default]")] = None,
    steps: Annotated[int | None, typer.Option(help="Denoising steps [model default]")] = None,
    token: TokenOpt = None,
    tls: TlsOpt = False,
    ca_file: CaFileOpt = None,
    client_cert: ClientCertOpt = None,
    client_key: ClientKeyOpt = None,
) -> None:
    """Generate videos for people to rate: each prompt x seed through the generator.

    The text a video is made from is the one raters see and the export's
    caption: the detailed description of a `lift prompts make` line (the
    paper generates from it), so semantic consistency is judged against
    what the model was asked for. LIFT_TOKEN authenticates to both the
    generator (scope generate) and the feedback service (admin).
    """
    if (feedback is None) == (out is None):
        fail("give --feedback URL (upload to a running service) or --out DIR, one of them", 2)
    items = _read_prompts(prompts)
    creds = credentials(token, tls, ca_file, client_cert, client_key)
    from lift.client import GeneratorClient, GeneratorError
    from lift.generation import GenerationRequest

    jsonl: Any = None
    if out is not None:
        try:
            (out / "videos").mkdir(parents=True, exist_ok=True)
            jsonl = (out / "items.jsonl").open("a", encoding="utf-8")
        except OSError as exc:
            fail(f"cannot write into --out {out}: {exc.strerror}; give a folder", code=2)
    uploader = None
    if feedback is not None:
        uploader = _Uploader(feedback, token, ca_file)
        uploader.check()  # a wrong token or address fails before any video is generated
    made = 0
    try:
        with GeneratorClient(generator, credentials=creds) as client:
            for pid, text in items:
                for k in range(seeds):
                    seed = seed_base + k
                    name = f"{pid}-s{seed}.mp4"
                    if out is not None and (out / "videos" / name).exists():
                        continue  # written by an earlier run: resume
                    req = GenerationRequest(
                        prompt=text,
                        seed=seed,
                        num_frames=num_frames,
                        height=height,
                        width=width,
                        num_inference_steps=steps,
                    )
                    video = client.generate(req)
                    if uploader is not None:
                        item_id = uploader.upload(video.data, text)
                        typer.echo(f"{pid} seed {seed}: item {item_id}")
                    else:
                        assert out is not None
                        (out / "videos" / name).write_bytes(video.data)
                        record = {
                            "video": f"videos/{name}",
                            "prompt": text,
                            "id": pid,
                            "seed": seed,
                        }
                        jsonl.write(json.dumps(record, ensure_ascii=False) + "\n")
                        jsonl.flush()
                        typer.echo(f"{pid} seed {seed}: {out / 'videos' / name}")
                    made += 1
    except GeneratorError as exc:
        if exc.code in ("UNAVAILABLE", "DEADLINE_EXCEEDED"):
            fail(
                f"cannot reach the generator at {generator} ({exc.message}); start it "
                "(`lift generator serve`) or fix --generator"
            )
        fail(f"the generator refused: {exc}")
    finally:
        if jsonl is not None:
            jsonl.close()
        if uploader is not None:
            uploader.close()
    where = feedback if feedback is not None else f"{out}/items.jsonl"
    typer.echo(f"{made} videos generated for {len(items)} prompts -> {where}")


class _Uploader:
    """POST /v1/items to a feedback service (multipart), with the bearer token."""

    def __init__(self, url: str, token: str | None, ca_file: Path | None) -> None:
        import httpx

        headers = {"authorization": f"Bearer {token}"} if token else {}
        verify: Any = True
        if ca_file is not None:
            import ssl

            verify = ssl.create_default_context(cafile=str(ca_file))
        self.url = url.rstrip("/")
        if not self.url.startswith(("http://", "https://")):
            fail(f"--feedback must be an http:// or https:// URL, got {url!r}", code=2)
        self.client = httpx.Client(base_url=self.url, headers=headers, timeout=120, verify=verify)

    def _call(self, method: str, path: str, what: str, **kw: Any) -> Any:
        import httpx

        try:
            r = self.client.request(method, path, **kw)
        except httpx.HTTPError as exc:
            fail(
                f"cannot reach the feedback service at {self.url} ({exc}); start it "
                "(`lift feedback serve`) or fix --feedback"
            )
        if r.status_code not in (200, 201):
            try:
                message = r.json()["error"]["message"]
            except Exception:
                message = r.text[:200]
            fail(f"the feedback service refused {what} ({r.status_code}): {message}")
        return r.json()

    def check(self) -> None:
        """The token may upload (uploads need admin, as the overview does)."""
        self._call("GET", "/v1/overview", "the token (uploads need the admin scope)")

    def upload(self, data: bytes, prompt: str) -> str:
        files = {"video": ("video.mp4", data, "video/mp4")}
        reply = self._call("POST", "/v1/items", "the upload", files=files, data={"prompt": prompt})
        return str(reply["item_id"])

    def close(self) -> None:
        self.client.close()
