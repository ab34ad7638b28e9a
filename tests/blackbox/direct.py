#!/usr/bin/python3
# Calls a VM over its direct socket (peer-to-peer D-Bus, no bus daemon), python3-dbus.
#
# SOCKET may be bus:NAME instead: the same over the bus (DBUS_SYSTEM_BUS_ADDRESS) to VM NAME,
# to compare the two. IFACE without a dot is org.vmsup.IFACE.
#
#   direct.py call SOCKET IFACE METHOD [SIG ARG...]   one call; prints "ok REPLY" or "error NAME: MESSAGE"
#                                  (ARGs: integers for t/u/i, "true"/"false" for b, strings otherwise)
#   direct.py get SOCKET PROP      Properties.Get(org.vmsup.VM1, PROP): "ok VALUE" or "error ..."
#   direct.py fdon SOCKET IFACE METHOD   the method (no arguments) with a pipe's end attached ("h")
#   direct.py serial SOCKET        Console1.OpenSerial: "ok fd" when a descriptor came back
#   direct.py subscribe SOCKET     VM1.Subscribe, prints "READY", then one line per signal received
#   direct.py hold SOCKET N        N connections, each reading State once; prints a count of each
#                                  outcome, then "HOLDING", and keeps them open until killed
#   direct.py unread SOCKET N      N State reads sent at once on a raw socket, none of the
#                                  replies read; prints "CLOSED" when the supervisor closed
#                                  the connection within 2 s (120 s past 1024), "OPEN" otherwise
#   direct.py silent SOCKET        connects and sends nothing at all; prints "SILENT", then waits
#                                  for the supervisor to close the socket: prints "CLOSED"
import os
import socket
import sys
import time

import dbus
import dbus.lowlevel

PATH = "/org/vmsup/VM"


# ---- a raw D-Bus peer (SASL EXTERNAL, messages marshalled here, replies never read) ----

def raw_connect(sock):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock)
    s.sendall(b"\0AUTH EXTERNAL " + str(os.getuid()).encode().hex().encode() + b"\r\n")
    line = b""
    while not line.endswith(b"\r\n"):
        chunk = s.recv(1)
        if not chunk:
            raise SystemExit("the supervisor closed during the handshake")
        line += chunk
    if not line.startswith(b"OK "):
        raise SystemExit("handshake refused: %r" % line)
    s.sendall(b"BEGIN\r\n")
    s.setblocking(False)
    return s


def state_get_message():
    # Properties.Get("org.vmsup.VM1", "State") to /org/vmsup/VM, serial 1 (a peer may reuse
    # serials: the supervisor answers each call as it comes).
    import struct

    def pad(b, n):
        return b + b"\0" * (-len(b) % n)

    def string(v):
        e = v.encode()
        return struct.pack("<I", len(e)) + e + b"\0"

    def field(code, sig, value):
        return struct.pack("<B", code) + bytes([1]) + sig.encode() + b"\0" + value

    # Each field starts 8-aligned; the array's length leaves out the padding after the last.
    fields = b"".join(pad(f, 8) for f in [
        field(1, "o", string(PATH)),
        field(2, "s", string("org.freedesktop.DBus.Properties")),
        field(3, "s", string("Get")),
    ]) + field(8, "g", bytes([2]) + b"ss\0")
    body = pad(string("org.vmsup.VM1"), 4) + string("State")
    head = struct.pack("<cBBBII", b"l", 1, 0, 1, len(body), 1) + struct.pack("<I", len(fields)) + fields
    return pad(head, 8) + body


def raw_hung_up(s, timeout):
    import select
    p = select.poll()
    p.register(s, select.POLLRDHUP)
    return any(ev & (select.POLLRDHUP | select.POLLHUP | select.POLLERR) for _, ev in p.poll(timeout * 1000))


def raw_send(s, data, timeout):
    # True when the supervisor closed the connection before all of data was written.
    import select
    view, deadline = memoryview(data), time.time() + timeout
    while view and time.time() < deadline:
        try:
            k = s.send(view)
            view = view[k:]
        except BlockingIOError:
            if raw_hung_up(s, 0):
                return True
            select.select([], [s], [], 0.2)
        except (BrokenPipeError, ConnectionResetError):
            return True
    return False


DEST = None


def connect(sock):
    global DEST
    if sock.startswith("bus:"):
        DEST = "org.vmsup.VM." + sock[4:]
        return dbus.bus.BusConnection(os.environ["DBUS_SYSTEM_BUS_ADDRESS"])
    return dbus.connection.Connection("unix:path=" + sock)


def connect_fds(sock):
    # libdbus authenticates on the first call: until then it says it cannot pass descriptors.
    c = connect(sock)
    if DEST is None:
        c.call_blocking(None, PATH, "org.freedesktop.DBus.Peer", "Ping", "", [], timeout=120)
    return c


def iface_name(iface):
    return iface if "." in iface else "org.vmsup." + iface


def convert(sig, args):
    out = []
    for s, a in zip(sig, args):
        if s in "tuixnq":
            out.append(int(a))
        elif s == "b":
            out.append(a == "true")
        else:
            out.append(a)
    return out


def call(conn, iface, method, sig="", args=()):
    try:
        reply = conn.call_blocking(DEST, PATH, iface, method, sig, convert(sig, args), timeout=120)
        return "ok %s" % (reply,)
    except dbus.exceptions.DBusException as e:
        return "error %s: %s" % (e.get_dbus_name(), e.get_dbus_message())


def main():
    cmd, sock = sys.argv[1], sys.argv[2]
    if cmd == "call":
        iface, method = sys.argv[3], sys.argv[4]
        sig = sys.argv[5] if len(sys.argv) > 5 else ""
        print(call(connect(sock), iface_name(iface), method, sig, sys.argv[6:]))
    elif cmd == "get":
        print(call(connect(sock), "org.freedesktop.DBus.Properties", "Get", "ss", ["org.vmsup.VM1", sys.argv[3]]))
    elif cmd == "fdon":
        r, w = os.pipe()
        try:
            c = connect_fds(sock)
            reply = c.call_blocking(DEST, PATH, iface_name(sys.argv[3]), sys.argv[4], "h",
                                                [dbus.types.UnixFd(w)], timeout=120)
            print("ok %s" % (reply,))
        except dbus.exceptions.DBusException as e:
            print("error %s: %s" % (e.get_dbus_name(), e.get_dbus_message()))
    elif cmd == "serial":
        try:
            c = connect_fds(sock)
            fd = c.call_blocking(DEST, PATH, "org.vmsup.Console1", "OpenSerial", "", [], timeout=120)
            n = fd.take()
            os.fstat(n)
            print("ok fd")
        except dbus.exceptions.DBusException as e:
            print("error %s: %s" % (e.get_dbus_name(), e.get_dbus_message()))
    elif cmd == "subscribe":
        from dbus.mainloop.glib import DBusGMainLoop
        from gi.repository import GLib
        DBusGMainLoop(set_as_default=True)
        conn = dbus.connection.Connection("unix:path=" + sock, mainloop=DBusGMainLoop())

        def on_signal(*args, **kw):
            print("signal %s %s" % (kw.get("member"), " ".join(str(a) for a in args)), flush=True)

        conn.add_signal_receiver(on_signal, member_keyword="member", path=PATH)
        conn.call_blocking(None, PATH, "org.vmsup.VM1", "Subscribe", "", [], timeout=120)
        print("READY", flush=True)
        GLib.MainLoop().run()
    elif cmd == "hold":
        conns, outcomes = [], {}
        for _ in range(int(sys.argv[3])):
            try:
                c = connect(sock)
                res = call(c, "org.freedesktop.DBus.Properties", "Get", "ss", ["org.vmsup.VM1", "State"])
                conns.append(c)
            except dbus.exceptions.DBusException as e:
                res = "error " + e.get_dbus_name()
            key = "ok" if res.startswith("ok") else res.split(":")[0]
            outcomes[key] = outcomes.get(key, 0) + 1
        for k in sorted(outcomes):
            print("%s: %d" % (k, outcomes[k]))
        print("HOLDING", flush=True)
        while True:
            time.sleep(60)
    elif cmd == "unread":
        # Calls sent, no reply ever read: the supervisor closes a peer that lets too many
        # replies pile up. A raw socket, not libdbus: libdbus reads what arrives while it
        # writes, which would drain the replies and leave nothing to pile up.
        n = int(sys.argv[3])
        s = raw_connect(sock)
        msg = state_get_message()
        closed = raw_send(s, msg * n, 120 if n > 1024 else 5)
        # The supervisor may still be working through what was sent (slowly, under a
        # sanitizer): give it time to decide, poking with one more call now and then.
        deadline = time.time() + (120 if n > 1024 else 2)
        while not closed and time.time() < deadline:
            closed = raw_hung_up(s, 0.5) or raw_send(s, msg, 1)
        print("CLOSED" if closed or raw_hung_up(s, 0) else "OPEN")
    elif cmd == "silent":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(sock)
        print("SILENT", flush=True)
        s.settimeout(120)
        try:
            while s.recv(4096):
                pass
        except OSError:
            pass
        print("CLOSED", flush=True)
    else:
        raise SystemExit("usage: see the head of " + sys.argv[0])


main()
