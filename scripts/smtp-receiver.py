#!/usr/bin/env python3
"""An SMTP server for tests (aiosmtpd from PyPI): STARTTLS, or TLS from the first byte, with a self-signed certificate
made at start; AUTH PLAIN and LOGIN for one user when asked; every message it accepts appended as one JSON line
(received_at as unix seconds, mail_from, rcpt_tos, data) to the log. Writes the port it listens on to --port-file
once it is ready.

    smtp-receiver.py --mode starttls|tls|plain --log /tmp/mail.jsonl --port-file /tmp/port [--user U --password P]
                     [--reject-recipients]

--mode plain offers no STARTTLS (a client that insists on it must refuse to send); --reject-recipients answers
every RCPT with 550 (a permanent refusal).
"""
import argparse
import asyncio
import json
import os
import signal
import socket
import ssl
import subprocess
import tempfile
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult


def self_signed_context(directory):
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-days", "1",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def main():
    # A test process that ignores SIGTERM hands that on to its children: stop when told to.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["starttls", "tls", "plain"], required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--reject-recipients", action="store_true")
    args = parser.parse_args()

    class Handler:
        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
            if args.reject_recipients:
                return "550 5.1.1 no such mailbox here"
            envelope.rcpt_tos.append(address)
            return "250 OK"

        async def handle_DATA(self, server, session, envelope):
            entry = {"received_at": time.time(), "mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos,
                     "authenticated": bool(session.authenticated),
                     "data": envelope.original_content.decode("utf-8", "replace")}
            with open(args.log, "a", encoding="utf-8") as log:
                log.write(json.dumps(entry) + "\n")
            return "250 2.0.0 queued"

    def authenticator(server, session, envelope, mechanism, auth_data):
        good = auth_data.login == (args.user or "").encode() and auth_data.password == (args.password or "").encode()
        return AuthResult(success=good)

    directory = tempfile.mkdtemp(prefix="smtp-receiver-")
    context = self_signed_context(directory) if args.mode != "plain" else None
    # aiosmtpd connects to its own port to see that it is up, so it needs a real one: ask the kernel for a free one.
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    free_port = probe.getsockname()[1]
    probe.close()
    options = {"hostname": "127.0.0.1", "port": free_port, "server_hostname": "localhost"}
    smtp_options = {}
    if args.user:
        smtp_options.update(authenticator=authenticator, auth_required=True, auth_require_tls=args.mode == "starttls")
    if args.mode == "starttls":
        smtp_options.update(tls_context=context, require_starttls=True)
    elif args.mode == "tls":
        options["ssl_context"] = context
    controller = Controller(Handler(), **options, **smtp_options)
    controller.start()
    port = free_port
    with open(args.port_file + ".tmp", "w") as handle:
        handle.write(str(port))
    os.rename(args.port_file + ".tmp", args.port_file)
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
