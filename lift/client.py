"""Python clients for the LiFT services: the public import path.

    from lift.client import CriticClient
    with CriticClient("localhost:50051") as critic:
        c = critic.critique("clip.mp4", prompt="a dog runs on the beach")
        print(c.reward, c.dimension("motion_smoothness").reasons)

The clients live in :mod:`lift.clients` on one base (:mod:`lift.clients.base`):
every error is a :class:`ClientError` with the gRPC status name in ``code``; every
client takes ``timeout_s`` (the deadline of a call), ``token`` (a bearer token; by
default ``LIFT_TOKEN`` when it is set) and ``credentials`` (TLS and call metadata:
``Credentials.create(token, tls=True, ca_file=..., client_cert=..., client_key=...)``;
by default from ``LIFT_TLS``, ``LIFT_CA_FILE``, ``LIFT_CLIENT_CERT``/``_KEY``), and
closes as a context manager. None of them imports torch.
"""

from lift.clients.base import ClientError, Credentials
from lift.clients.critic import CHUNK, AsyncCriticClient, CriticClient, CriticError, Video
from lift.clients.generator import AdapterNotFound, GeneratorClient, GeneratorError
from lift.clients.trainer import TrainerClient, TrainerError

__all__ = [
    "CHUNK",
    "AdapterNotFound",
    "AsyncCriticClient",
    "ClientError",
    "Credentials",
    "CriticClient",
    "CriticError",
    "GeneratorClient",
    "GeneratorError",
    "TrainerClient",
    "TrainerError",
    "Video",
]
