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
#   direct.py unread SOCKET N      N State reads sent at once, none of the replies read; then
#                                  waits 2 s and pings: prints "CLOSED" when the supervisor
#                                  closed the connection, "OPEN" otherwise
#   direct.py silent SOCKET        connects and sends nothing at all; prints "SILENT", then waits
#                                  for the supervisor to close the socket: prints "CLOSED"
import os
import socket
import sys
import time

import dbus
import dbus.lowlevel

PATH = "/org/vmsup/VM"


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
        # Calls sent in batches, no reply ever read: the supervisor closes a peer that lets
        # too many replies pile up. A write after it closed fails, which is how this end
        # learns it without reading (a blocking call would read, and so drain, the replies).
        c = connect_fds(sock)
        n, sent = int(sys.argv[3]), 0

        def state_call():
            m = dbus.lowlevel.MethodCallMessage(None, PATH, "org.freedesktop.DBus.Properties", "Get")
            m.append("org.vmsup.VM1", "State", signature="ss")
            return m

        while sent < n and c.get_is_connected():
            k = min(500, n - sent)
            for _ in range(k):
                c.send_message(state_call())
            sent += k
            c.flush()
        # The supervisor may still be working through what was sent (slowly, under a
        # sanitizer): give it time to decide, poking with one more call now and then.
        deadline = time.time() + (120 if n > 1024 else 3)
        while c.get_is_connected() and time.time() < deadline:
            time.sleep(0.5)
            c.send_message(state_call())
            c.flush()
        if not c.get_is_connected():
            print("CLOSED")
        else:
            try:
                c.call_blocking(None, PATH, "org.freedesktop.DBus.Peer", "Ping", "", [], timeout=10)
                print("OPEN")
            except dbus.exceptions.DBusException:
                print("CLOSED")
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
