#!/usr/bin/python3
# A client of org.vmsup.Console1 (python3-dbus receives the descriptors busctl cannot).
# The bus address comes from DBUS_SYSTEM_BUS_ADDRESS. Every wait is bounded by a
# generous deadline; what is printed is what the test checks.
#
#   console.py run VM CMD REGEX [force]   OpenSerial (or OpenSerialWithOptions force), send
#                                         CMD and a newline until REGEX shows in the output;
#                                         prints "found" or "missing"; "error NAME" on refusal
#   console.py hold VM                    OpenSerial, prints "OPEN", then reads until EOF and
#                                         prints "EOF"
#   console.py open VM                    OpenSerial; prints "ok" or "error NAME", closes it
#   console.py stall VM CMD               OpenSerial, sends CMD, never reads; prints "OPEN",
#                                         then "HUP" once the supervisor closed the session
#   console.py vnc VM [N]                 N viewers (default 1) through OpenVNC, each: RFB
#                                         handshake, security None, ClientInit, ServerInit,
#                                         a FramebufferUpdateRequest; prints "viewer W H update"
#   console.py vncunix PATH               one viewer through a listening socket (vmsupctl vnc)
#   console.py shot VM FILE [regular]     Screenshot into a pipe whose other end is copied to
#                                         FILE (or into FILE itself, a regular file); prints
#                                         "ok" or "error NAME", then "bytes N"
import os
import re
import select
import socket
import struct
import sys
import threading
import time

import dbus

ADDRESS = os.environ["DBUS_SYSTEM_BUS_ADDRESS"]
DEADLINE = 120


def call(vm, method, sig="", args=()):
    conn = dbus.bus.BusConnection(ADDRESS)
    try:
        return conn.call_blocking("org.vmsup.VM." + vm, "/org/vmsup/VM", "org.vmsup.Console1", method, sig, args,
                                  timeout=120), None
    except dbus.exceptions.DBusException as e:
        return None, e.get_dbus_name()


def open_serial(vm, force=False):
    if force:
        r, err = call(vm, "OpenSerialWithOptions", "a{sv}", ({"force": dbus.Boolean(True)},))
    else:
        r, err = call(vm, "OpenSerial")
    if err:
        print("error", err, flush=True)
        sys.exit(0)
    return socket.socket(fileno=r.take())


def run(vm, cmd, regex, force=False):
    s = open_serial(vm, force)
    buf = b""
    end = time.monotonic() + DEADLINE
    next_send = 0
    while time.monotonic() < end:
        if time.monotonic() >= next_send:
            # The shell may not be there yet: say it again until it answers.
            s.sendall(cmd.encode() + b"\n")
            next_send = time.monotonic() + 5
        r, _, _ = select.select([s], [], [], 1)
        if r:
            d = s.recv(65536)
            if not d:
                break
            buf = buf[-4096:] + d  # a flooding guest: keep up, search the tail only
            if re.search(regex.encode(), buf):
                print("found", flush=True)
                return
    print("missing", flush=True)
    sys.stderr.write(repr(buf[-2000:]) + "\n")


def hold(vm):
    s = open_serial(vm)
    print("OPEN", flush=True)
    end = time.monotonic() + 600
    while time.monotonic() < end:
        r, _, _ = select.select([s], [], [], 1)
        if r and not s.recv(65536):
            print("EOF", flush=True)
            return


def open_only(vm):
    s = open_serial(vm)
    print("ok", flush=True)
    s.close()


def stall(vm, cmd):
    s = open_serial(vm)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.sendall(cmd.encode() + b"\n")
    print("OPEN", flush=True)
    p = select.poll()
    p.register(s, select.POLLHUP | select.POLLRDHUP)
    end = time.monotonic() + 600
    while time.monotonic() < end:
        for _, ev in p.poll(1000):
            if ev & (select.POLLHUP | select.POLLRDHUP):
                print("HUP", flush=True)
                time.sleep(3600)
                return


def recvn(s, n):
    b = b""
    while len(b) < n:
        d = s.recv(n - len(b))
        if not d:
            raise EOFError("EOF after %d of %d bytes" % (len(b), n))
        b += d
    return b


def viewer(s):
    s.settimeout(60)
    ver = recvn(s, 12)
    assert ver.startswith(b"RFB 003."), ver
    s.sendall(b"RFB 003.008\n")
    n = recvn(s, 1)[0]
    types = recvn(s, n)
    assert 1 in types, types
    s.sendall(b"\x01")
    assert struct.unpack(">I", recvn(s, 4))[0] == 0
    s.sendall(b"\x01")  # ClientInit: shared
    w, h = struct.unpack(">HH", recvn(s, 4))
    recvn(s, 16)
    nl = struct.unpack(">I", recvn(s, 4))[0]
    recvn(s, nl)
    s.sendall(struct.pack(">BBHHHH", 3, 0, 0, 0, w, h))
    t = recvn(s, 1)[0]
    return w, h, "update" if t == 0 else "type%d" % t


def vnc(vm, n=1):
    socks = []
    for _ in range(n):
        r, err = call(vm, "OpenVNC")
        if err:
            print("error", err, flush=True)
            return
        socks.append(socket.socket(fileno=r.take()))
    # All connected before any handshake: viewers at once.
    for s in socks:
        try:
            w, h, what = viewer(s)
            print("viewer", w, h, what, flush=True)
        except Exception as e:  # noqa: BLE001
            print("viewer failed", e, flush=True)


def vnc_unix(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    w, h, what = viewer(s)
    print("viewer", w, h, what, flush=True)


def shot_regular(vm, path):
    with open(path, "wb") as f:
        r, err = call(vm, "Screenshot", "h", (dbus.types.UnixFd(f.fileno()),))
    print("error " + err if err else "ok")
    print("bytes", os.stat(path).st_size)


def shot(vm, path):
    rfd, wfd = os.pipe()
    data = []

    def drain():
        while True:
            d = os.read(rfd, 65536)
            if not d:
                break
            data.append(d)

    t = threading.Thread(target=drain)
    t.start()
    r, err = call(vm, "Screenshot", "h", (dbus.types.UnixFd(wfd),))
    os.close(wfd)
    t.join()
    with open(path, "wb") as f:
        f.write(b"".join(data))
    print("error " + err if err else "ok")
    print("bytes", sum(len(d) for d in data))


def main():
    op, vm = sys.argv[1], sys.argv[2]
    if op == "run":
        run(vm, sys.argv[3], sys.argv[4], len(sys.argv) > 5 and sys.argv[5] == "force")
    elif op == "hold":
        hold(vm)
    elif op == "open":
        open_only(vm)
    elif op == "stall":
        stall(vm, sys.argv[3])
    elif op == "vncunix":
        vnc_unix(vm)
    elif op == "vnc":
        vnc(vm, int(sys.argv[3]) if len(sys.argv) > 3 else 1)
    elif op == "shot" and len(sys.argv) > 4 and sys.argv[4] == "regular":
        shot_regular(vm, sys.argv[3])
    elif op == "shot":
        shot(vm, sys.argv[3])
    else:
        sys.exit("unknown operation " + op)


main()
