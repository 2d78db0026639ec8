"""The images' HEALTHCHECK: GET /readyz of the service in this container, exit 0 when ready.

    python healthcheck.py SERVICE      (critic, generator, trainer or feedback)

The port and TLS come from the service's own settings variables (LIFT_<SERVICE>_HTTP_PORT,
LIFT_<SERVICE>_TLS_CERT_FILE, LIFT_<SERVICE>_TLS_CLIENT_CA_FILE), so the check follows the
configuration the server runs with. Over TLS it talks to the server in its own container on
127.0.0.1 and sends nothing secret, so it does not verify the server's certificate (its name is
the service's, not 127.0.0.1); under mutual TLS it presents LIFT_HEALTHCHECK_CERT_FILE and
LIFT_HEALTHCHECK_KEY_FILE (a client certificate the service's CA signed). Only the standard
library: it runs in any of the images.
"""

from __future__ import annotations

import os
import ssl
import sys
import urllib.error
import urllib.request

PORTS = {"critic": 8080, "generator": 8081, "trainer": 8082, "feedback": 8083}


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] not in PORTS:
        print(f"usage: healthcheck.py {{{','.join(PORTS)}}}", file=sys.stderr)
        return 2
    service = argv[1]
    prefix = f"LIFT_{service.upper()}_"
    port = int(os.environ.get(prefix + "HTTP_PORT", PORTS[service]))
    cert = os.environ.get(prefix + "TLS_CERT_FILE")
    context = None
    if cert:
        ca = os.environ.get(prefix + "TLS_CLIENT_CA_FILE")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        if ca:
            cert_file = os.environ.get("LIFT_HEALTHCHECK_CERT_FILE")
            key_file = os.environ.get("LIFT_HEALTHCHECK_KEY_FILE")
            if not (cert_file and key_file):
                print(
                    f"{prefix}TLS_CLIENT_CA_FILE is set (mutual TLS): set "
                    "LIFT_HEALTHCHECK_CERT_FILE and LIFT_HEALTHCHECK_KEY_FILE to a client "
                    "certificate that CA signed",
                    file=sys.stderr,
                )
                return 1
            try:
                context.load_cert_chain(cert_file, key_file)
            except (OSError, ssl.SSLError) as exc:
                print(f"client certificate {cert_file}: {exc}", file=sys.stderr)
                return 1
    url = f"{'https' if cert else 'http'}://127.0.0.1:{port}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=4, context=context) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError, ssl.SSLError) as exc:
        print(f"{url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
