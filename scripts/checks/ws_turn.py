#!/usr/bin/env python3
"""Send one chat turn through a chatbox gateway, so a scrape of /metrics shows
the worker's series too. Python 3 standard library only (a minimal WebSocket
client: text frames, client masking, no extensions).

    python3 scripts/checks/ws_turn.py HOST:PORT TOKEN

Exits 0 once the final `ai_response` (done: true) arrives, 1 otherwise.
"""
import base64
import json
import os
import socket
import struct
import sys
import time


def send_text(sock, text):
    payload = text.encode()
    header = bytearray([0x81])
    n = len(payload)
    if n < 126:
        header.append(0x80 | n)
    elif n < 65536:
        header.append(0x80 | 126)
        header += struct.pack("!H", n)
    else:
        header.append(0x80 | 127)
        header += struct.pack("!Q", n)
    mask = os.urandom(4)
    sock.sendall(bytes(header) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))


def recv_exact(sock, n, buf):
    while len(buf) < n:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("socket closed")
        buf += chunk
    out, rest = buf[:n], buf[n:]
    return out, rest


def frames(sock, buf):
    while True:
        head, buf = recv_exact(sock, 2, buf)
        opcode, n = head[0] & 0x0F, head[1] & 0x7F
        if n == 126:
            ext, buf = recv_exact(sock, 2, buf)
            n = struct.unpack("!H", ext)[0]
        elif n == 127:
            ext, buf = recv_exact(sock, 8, buf)
            n = struct.unpack("!Q", ext)[0]
        if head[1] & 0x80:
            _, buf = recv_exact(sock, 4, buf)  # servers do not mask; skip if one does
        payload, buf = recv_exact(sock, n, buf)
        if opcode == 8:
            return
        if opcode == 1:
            yield payload.decode("utf-8", "replace")


def main():
    addr, token = sys.argv[1], sys.argv[2]
    host, port = addr.rsplit(":", 1)
    deadline = time.time() + 30
    sock = socket.create_connection((host, int(port)), timeout=30)
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        "GET /chat/ws?new_session=true HTTP/1.1\r\n"
        f"Host: {addr}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"Authorization: Bearer {token}\r\n\r\n"
    )
    sock.sendall(request.encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            print("ws_turn: connection closed during the handshake", file=sys.stderr)
            return 1
        buf += chunk
    head, buf = buf.split(b"\r\n\r\n", 1)
    status = head.split(b"\r\n", 1)[0].decode()
    if " 101 " not in status + " ":
        print(f"ws_turn: upgrade refused: {status}", file=sys.stderr)
        return 1
    send_text(sock, json.dumps({"type": "user_message", "id": "observability-check-1",
                                "content": "Hello from the observability check"}))
    for text in frames(sock, buf):
        try:
            msg = json.loads(text)
        except ValueError:
            continue
        if msg.get("type") == "error":
            print(f"ws_turn: error frame: {text}", file=sys.stderr)
            return 1
        if msg.get("type") == "ai_response" and msg.get("done"):
            sock.close()
            return 0
        if time.time() > deadline:
            break
    print("ws_turn: no final answer", file=sys.stderr)
    return 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (OSError, ConnectionError) as err:
        print(f"ws_turn: {err}", file=sys.stderr)
        sys.exit(1)
