"""The typed HTTP contract: each service's OpenAPI document validates, and real replies match it.

Two halves. The document: it passes openapi-spec-validator, every ``$ref`` resolves
(no ``#/$defs``), each body of several media types is declared with all of them,
errors use the one error model with no 422 anywhere, and every example validates
against its own schema. The replies: real responses of running services, successes
and errors, validate against the schema the document gives for that path, status
and media type, with ``additionalProperties: false`` catching any field the document
does not name.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_spec

from lift.runner import start_in_thread
from lift.services.critic.engine import CriticEngine
from lift.services.critic.http_app import create_app as critic_app
from lift.services.critic.settings import CriticSettings
from lift.services.generator.engine import GeneratorEngine
from lift.services.generator.http_app import create_app as generator_app
from lift.services.generator.server import build_generator
from lift.services.generator.settings import GeneratorSettings
from lift.services.trainer.http_app import create_app as trainer_app
from lift.services.trainer.manager import RunManager
from lift.services.trainer.server import build_trainer
from lift.services.trainer.settings import TrainerSettings
from lift.serving import WorkLimiter
from tests.service.conftest import start_critic

PROMPT = "a red ball rolls across the floor"
SMALL = {"num_frames": 9, "height": 32, "width": 32, "num_inference_steps": 2}


def _apps(tmp: Path) -> dict[str, FastAPI]:
    limiter = WorkLimiter(1, 1)
    return {
        "critic": critic_app(CriticEngine(CriticSettings()), limiter),
        "generator": generator_app(GeneratorEngine(GeneratorSettings()), limiter),
        "trainer": trainer_app(RunManager(TrainerSettings(data_dir=tmp)), limiter),
    }


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """The three documents, built from the apps without loading any model."""
    return {name: app.openapi() for name, app in _apps(tmp_path_factory.mktemp("t")).items()}


def _walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    yield path, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _walk(v, f"{path}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, f"{path}/{i}")


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def _validator(doc: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    """A JSON Schema validator for ``schema`` whose ``#/components/...`` refs resolve in ``doc``."""
    return Draft202012Validator({**schema, "components": doc["components"]})


def _operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, op in item.items():
            yield path, method, op


# ---------------------------------------------------------------- the document


@pytest.mark.parametrize("service", ["critic", "generator", "trainer"])
def test_the_document_validates_and_every_ref_resolves(docs, service: str) -> None:
    doc = docs[service]
    validate_spec(doc)
    refs = [
        (where, node["$ref"])
        for where, node in _walk(doc)
        if isinstance(node, dict) and "$ref" in node
    ]
    assert refs, "a typed API refers to its component schemas"
    for where, ref in refs:
        assert ref.startswith("#/components/schemas/"), f"{where}: {ref}"
        _resolve(doc, ref)  # KeyError when it dangles
    assert not [w for w, n in _walk(doc) if isinstance(n, dict) and "$defs" in n]
    assert not [w for w, n in _walk(doc) if isinstance(n, str) and "lift-openapi-model:" in n]


@pytest.mark.parametrize("service", ["critic", "generator", "trainer"])
def test_every_reply_is_typed_and_every_error_uses_the_one_model(docs, service: str) -> None:
    doc = docs[service]
    error_ref = {"$ref": "#/components/schemas/ErrorResponse"}
    for path, method, op in _operations(doc):
        responses = op["responses"]
        assert "422" not in responses, f"{method} {path}: bad input is a 400 here"
        ok = [s for s in responses if s.startswith("2")]
        assert ok, f"{method} {path} declares no success"
        for status in ok:
            for media, content in responses[status]["content"].items():
                schema = content.get("schema", {})
                # A JSON reply names its model; a stream or file is a string.
                assert schema, f"{method} {path} {status} {media}: untyped reply"
                if media == "application/json":
                    assert "$ref" in schema, f"{method} {path} {status}: {schema}"
        for status, response in responses.items():
            if status[0] in "45":
                assert response["content"]["application/json"]["schema"] == error_ref


def test_both_body_forms_sse_and_yaml_are_declared(docs) -> None:
    def body(service: str, path: str) -> dict[str, Any]:
        return docs[service]["paths"][path]["post"]["requestBody"]["content"]

    critiques = body("critic", "/v1/critiques")
    assert set(critiques) == {"multipart/form-data", "application/json"}
    form = _resolve(docs["critic"], critiques["multipart/form-data"]["schema"]["$ref"])
    assert set(form["required"]) == {"video", "prompt"}
    as_json = _resolve(docs["critic"], critiques["application/json"]["schema"]["$ref"])
    assert {"prompt", "video_uri", "video_b64"} <= set(as_json["properties"])
    assert set(body("generator", "/v1/adapters")) == {"multipart/form-data", "application/json"}
    assert set(body("trainer", "/v1/runs")) == {"application/json", "application/yaml"}
    assert body("trainer", "/v1/runs")["application/json"]["schema"]["$ref"].endswith("/RunConfig")
    video = docs["generator"]["paths"]["/v1/generations"]["post"]["responses"]["200"]
    assert set(video["content"]) == {"video/mp4", "application/json"}
    events = docs["trainer"]["paths"]["/v1/runs/{run_id}/events"]["get"]["responses"]["200"]
    assert list(events["content"]) == ["text/event-stream"]
    item = events["content"]["text/event-stream"]["x-itemSchema"]
    assert item["properties"]["data"]["contentSchema"]["$ref"].endswith("/RunEventJSON")


@pytest.mark.parametrize("service", ["critic", "generator", "trainer"])
def test_every_example_validates_against_its_schema(docs, service: str) -> None:
    doc = docs[service]
    checked = 0
    for name, schema in doc["components"]["schemas"].items():
        for example in schema.get("examples", []):
            errors = list(_validator(doc, schema).iter_errors(example))
            assert not errors, f"{name}: {errors[0].message}"
            checked += 1
    for path, method, op in _operations(doc):
        for status, response in op["responses"].items():
            for content in response.get("content", {}).values():
                if "example" in content and "$ref" in content.get("schema", {}):
                    errors = list(
                        _validator(doc, content["schema"]).iter_errors(content["example"])
                    )
                    assert not errors, f"{method} {path} {status}: {errors[0].message}"
                    checked += 1
    assert checked >= 5, "the document shows examples"


# ---------------------------------------------------------------- real replies


class Contract:
    """Checks replies of one running service against its own /openapi.json."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=120)
        self.doc = self.http.get("/openapi.json").json()

    def check(self, path: str, method: str, r: httpx.Response) -> Any:
        """Validate ``r`` against the document; its JSON body (or None)."""
        op = self.doc["paths"][path][method]
        status = str(r.status_code)
        assert status in op["responses"], f"{method} {path} answered undeclared {status}: {r.text}"
        media = r.headers["content-type"].split(";")[0]
        content = op["responses"][status]["content"]
        assert media in content, f"{method} {path} {status}: {media} not declared"
        if media != "application/json":
            return None
        body = r.json()
        errors = list(_validator(self.doc, content[media]["schema"]).iter_errors(body))
        assert not errors, f"{method} {path} {status}: {errors[0].message} in {body}"
        return body


@pytest.fixture(scope="module")
def critic_contract(critic) -> Iterator[Contract]:
    c = Contract(critic.http_url)
    yield c
    c.http.close()


def test_critic_replies_match_the_document(critic_contract: Contract, mp4s, critic) -> None:
    c = critic_contract
    post = "/v1/critiques"
    files = {"video": ("clip.mp4", mp4s["clean"], "video/mp4")}
    body = c.check(post, "post", c.http.post(post, files=files, data={"prompt": PROMPT}))
    assert [d["name"] for d in body["dimensions"]] == [
        "semantic_consistency",
        "motion_smoothness",
        "video_fidelity",
    ]
    b64 = base64.b64encode(mp4s["flicker"]).decode()
    c.check(post, "post", c.http.post(post, json={"prompt": PROMPT, "video_b64": b64}))
    scored = c.check(
        "/v1/scores",
        "post",
        c.http.post(
            "/v1/scores",
            json={
                "items": [
                    {"prompt": PROMPT, "video_b64": b64},
                    {"prompt": PROMPT, "video_b64": base64.b64encode(b"not a video").decode()},
                ]
            },
        ),
    )
    assert "critique" in scored["results"][0] and scored["results"][1]["error"]["code"] == (
        "INVALID_ARGUMENT"
    )
    c.check("/v1/info", "get", c.http.get("/v1/info"))
    c.check("/healthz", "get", c.http.get("/healthz"))
    c.check("/readyz", "get", c.http.get("/readyz"))

    # One status per kind of bad input, each with the one error body.
    def error(r: httpx.Response, status: int, path: str = post) -> str:
        assert r.status_code == status, r.text
        return c.check(path, "post", r)["error"]["message"]

    error(c.http.post(post, content=b"{nope", headers={"content-type": "application/json"}), 400)
    assert "video" in error(
        c.http.post(post, data={"prompt": PROMPT}, files={"x": ("x", b"1")}), 400
    )
    assert "prompt" in error(c.http.post(post, json={"video_uri": "file:///x.mp4"}), 400)
    missing = f"{critic.video_root.as_uri()}/nope.mp4"
    error(c.http.post(post, json={"prompt": PROMPT, "video_uri": missing}), 404)
    error(c.http.post(post, content=b"raw", headers={"content-type": "video/mp4"}), 415)
    small, stop = start_critic(max_video_bytes=4096)
    try:
        big = {"video": ("clip.mp4", mp4s["clean"][:8192], "video/mp4")}
        r = httpx.post(f"{small.http_url}{post}", files=big, data={"prompt": PROMPT})
        error(r, 413)
    finally:
        stop()
    error(
        c.http.post("/v1/scores", content=b"x", headers={"content-type": "text/plain"}),
        415,
        "/v1/scores",
    )
    r = c.http.get("/v1/nothing-here")
    assert r.status_code == 404 and r.json()["error"]["code"] == "NOT_FOUND"


@pytest.mark.parametrize(
    ("page", "assets"),
    [
        ("/docs", ["swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"]),
        ("/redoc", ["redoc.standalone.js", "favicon.png"]),
    ],
)
def test_docs_pages_use_only_assets_the_service_serves(http, page: str, assets: list[str]) -> None:
    html = http.get(page).text
    for name in assets:
        assert f'"/static/docs/{name}"' in html
        r = http.get(f"/static/docs/{name}")
        assert r.status_code == 200 and len(r.content) > 1000
    assert "cdn" not in html and "fonts.googleapis" not in html


def test_generator_replies_match_the_document(tiny_generator_dir) -> None:
    settings = GeneratorSettings(
        model=tiny_generator_dir, grpc_port=0, http_port=0, log_level="WARNING"
    )
    runner, stop = start_in_thread(build_generator, settings)
    c = Contract(f"http://127.0.0.1:{runner.http_port}")
    try:
        post = "/v1/generations"
        mp4 = c.http.post(post, json={"prompt": PROMPT, "seed": 3, **SMALL})
        c.check(post, "post", mp4)
        assert mp4.headers["content-type"] == "video/mp4" and mp4.headers["x-lift-seed"] == "3"
        r = c.http.post(
            post,
            json={"prompt": PROMPT, "seed": 3, **SMALL},
            headers={"accept": "application/json"},
        )
        body = c.check(post, "post", r)
        assert body["metadata"] == json.loads(mp4.headers["x-lift-metadata"]) | {
            "timings": body["metadata"]["timings"]
        }
        assert base64.b64decode(body["video_b64"]) == mp4.content  # same seed, same bytes
        c.check("/v1/info", "get", c.http.get("/v1/info"))
        bad = c.http.post(post, json={"prompt": PROMPT, "num_frames": "many"})
        assert (
            bad.status_code == 400
            and "num_frames" in c.check(post, "post", bad)["error"]["message"]
        )
        r = c.http.post(post, content=b"prompt=x", headers={"content-type": "text/plain"})
        assert r.status_code == 415
        c.check(post, "post", r)
        r = c.http.post("/v1/adapters", json={"version": "v"})
        assert (
            r.status_code == 400
            and "exactly one" in c.check("/v1/adapters", "post", r)["error"]["message"]
        )
        r = c.http.post("/v1/adapters", data={"version": "v"}, files={"config": ("c", b"{}")})
        assert (
            r.status_code == 400
            and "weights" in c.check("/v1/adapters", "post", r)["error"]["message"]
        )
    finally:
        c.http.close()
        stop()


def test_trainer_replies_and_events_match_the_document(
    tmp_path: Path, tiny_generator_dir: Path, offline_dataset: Path
) -> None:
    settings = TrainerSettings(
        grpc_port=0,
        http_port=0,
        data_dir=tmp_path / "data",
        data_roots=[tmp_path.parent],  # pytest's base temp: the tiny model, the dataset
    )
    runner_limit = settings.max_config_bytes
    runner, stop = start_in_thread(build_trainer, settings)
    c = Contract(f"http://127.0.0.1:{runner.http_port}")
    try:
        config = {
            "mode": "offline",
            "model": str(tiny_generator_dir),
            "offline_data": {"path": str(offline_dataset / "data.json")},
            "lora": {"rank": 4, "alpha": 4},
            "steps": 2,
            "batch_size": 2,
            "checkpoint_every": 2,
            "publish_every": 0,
        }
        r = c.http.post("/v1/runs", json=config)
        assert r.status_code == 201, r.text
        run = c.check("/v1/runs", "post", r)
        events = "/v1/runs/{run_id}/events"
        with c.http.stream("GET", f"/v1/runs/{run['id']}/events") as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = [line for line in stream.iter_lines() if line.startswith("data: ")]
        item = c.doc["paths"][events]["get"]["responses"]["200"]["content"]["text/event-stream"]
        event_schema = item["x-itemSchema"]["properties"]["data"]["contentSchema"]
        kinds = []
        for line in lines:
            event = json.loads(line[6:])
            errors = list(_validator(c.doc, event_schema).iter_errors(event))
            assert not errors, f"{errors[0].message} in {event}"
            kinds.append(event["kind"])
        assert kinds[0] == "state" and "step" in kinds
        deadline = time.monotonic() + 120
        while (got := c.http.get(f"/v1/runs/{run['id']}")).json()["state"] != "succeeded":
            assert time.monotonic() < deadline and got.json()["state"] in ("queued", "running")
            time.sleep(0.2)
        done = c.check("/v1/runs/{run_id}", "get", got)
        assert done["result"]["steps"] == 2 and done["config"]["steps"] == 2
        listed = c.check("/v1/runs", "get", c.http.get("/v1/runs", params={"state": "succeeded"}))
        assert [x["id"] for x in listed["runs"]] == [run["id"]]
        c.check("/v1/info", "get", c.http.get("/v1/info"))

        def error(r: httpx.Response, status: int, path: str, method: str = "get") -> None:
            assert r.status_code == status, r.text
            c.check(path, method, r)

        error(c.http.get("/v1/runs", params={"limit": 0}), 400, "/v1/runs")
        error(c.http.get("/v1/runs", params={"state": "sleeping"}), 400, "/v1/runs")
        error(c.http.get("/v1/runs/run-nope"), 404, "/v1/runs/{run_id}")
        error(c.http.get("/v1/runs/run-nope/events"), 404, events)
        error(c.http.get(f"/v1/runs/{run['id']}/events", params={"after": -1}), 400, events)
        error(c.http.post(f"/v1/runs/{run['id']}:cancel"), 409, "/v1/runs/{run_id}:cancel", "post")
        yaml = {"content-type": "application/yaml"}
        error(c.http.post("/v1/runs", content=b"steps: [", headers=yaml), 400, "/v1/runs", "post")
        error(
            c.http.post("/v1/runs", content=b"<run/>", headers={"content-type": "text/xml"}),
            415,
            "/v1/runs",
            "post",
        )
        huge = b"name: x\n" + b"#" * runner_limit + b"\n"
        error(c.http.post("/v1/runs", content=huge, headers=yaml), 413, "/v1/runs", "post")
    finally:
        c.http.close()
        stop()
