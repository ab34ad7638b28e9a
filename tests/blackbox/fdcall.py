#!/usr/bin/python3
# Calls a VM's methods with descriptors attached, as busctl cannot (python3-dbus).
# The bus address comes from DBUS_SYSTEM_BUS_ADDRESS.
#
#   fdcall.py linger VM          a TCP socket to a local listener that never reads, its send
#                                buffer full, SO_LINGER 3600, attached to GetStatus; every copy
#                                of ours is closed before the call can be answered; prints
#                                "SENT", then keeps the listener open until killed
#   fdcall.py readfile VM KIND [GUEST_PATH]
#                                ReadFile(GUEST_PATH or "/etc/hostname", 0, 0, fd) with fd of KIND: dgram,
#                                seqpacket, opath, dir, regular, rdonly (a pipe's read end),
#                                or the accepted pipe (write end) and stream (AF_UNIX);
#                                prints the reply or "error NAME", then "written N": the bytes
#                                that reached the descriptor's other side
#   fdcall.py writefile VM KIND  WriteFile("/tmp/x", fd, false) with KIND wronly (a pipe's
#                                write end) or dgram; prints the reply or "error NAME"
#   fdcall.py fdon VM IFACE METHOD   the method (taking no arguments) called with a pipe's end
#                                attached (signature "h"); prints the reply or "error NAME"
#   fdcall.py migrate VM METHOD KIND [OPTIONS]
#                                Migration1.METHOD (MigrateOut, MigrateIn) with fd of KIND: dgram,
#                                seqpacket, regular, opath, udp, rdpipe (a pipe's read end),
#                                wrpipe (its write end), unix (an AF_UNIX stream socket) or tcp
#                                (a connected TCP socket); OPTIONS a Python expression for the
#                                a{sv} (dbus types; "disk" is a second fd of KIND); prints the
#                                reply or "error NAME: message"
#   fdcall.py connections VM N   N connections, each calling GetStatus once and staying open;
#                                prints a count of each outcome, then "HOLDING" and waits
import os
import socket
import sys
import tempfile
import time

import dbus
import dbus.lowlevel

ADDRESS = os.environ["DBUS_SYSTEM_BUS_ADDRESS"]
PATH = "/org/vmsup/VM"


def connect():
    return dbus.bus.BusConnection(ADDRESS)


def call(conn, vm, iface, method, sig, args):
    try:
        reply = conn.call_blocking("org.vmsup.VM." + vm, PATH, "org.vmsup." + iface, method, sig, args,
                                   timeout=120)
        return "ok %s" % (reply,)
    except dbus.exceptions.DBusException as e:
        return "error %s" % e.get_dbus_name()


def linger(vm):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the connection inherits it
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    s.connect(listener.getsockname())
    s.setblocking(False)
    # Fill the receiver's window and our send buffer until nothing more moves: data stays unsent.
    sent = 0
    idle = 0
    while idle < 5:
        moved = 0
        try:
            while True:
                moved += s.send(b"x" * 65536)
        except BlockingIOError:
            pass
        sent += moved
        idle = idle + 1 if moved == 0 else 0
        time.sleep(0.05)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, (1).to_bytes(4, "little") + (3600).to_bytes(4, "little"))
    conn = connect()
    msg = dbus.lowlevel.MethodCallMessage("org.vmsup.VM." + vm, PATH, "org.vmsup.VM1", "GetStatus")
    msg.append(dbus.types.UnixFd(s), signature="h")  # the message holds its own copy
    s.close()
    conn.send_message(msg)  # written at once; then the message and its copy go
    del msg
    conn.flush()
    print("SENT %d" % sent, flush=True)
    while True:
        time.sleep(60)


def pipe_pair():
    r, w = os.pipe()
    return r, w


def readfile(vm, kind, path="/etc/hostname"):
    peer = None
    tmp = None
    if kind in ("dgram", "seqpacket"):
        a, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM if kind == "dgram" else socket.SOCK_SEQPACKET)
        fd = a.fileno()
    elif kind == "opath":
        fd = os.open("/tmp", os.O_PATH)
    elif kind == "dir":
        fd = os.open("/tmp", os.O_RDONLY | os.O_DIRECTORY)
    elif kind == "regular":
        tmp = tempfile.NamedTemporaryFile(dir="/tmp", delete=True)
        fd = tmp.fileno()
    elif kind == "rdonly":
        fd, w = pipe_pair()
        peer = w
    elif kind == "pipe":
        r, fd = pipe_pair()
    elif kind == "stream":
        a, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        fd = a.fileno()
    else:
        raise SystemExit("unknown kind " + kind)
    conn = connect()
    print(call(conn, vm, "Agent1", "ReadFile", "stth", [path, 0, 0, dbus.types.UnixFd(fd)]))
    written = 0
    if isinstance(peer, socket.socket) and kind != "stream":
        peer.setblocking(False)
        try:
            while True:
                written += len(peer.recv(65536))
        except BlockingIOError:
            pass
    elif tmp is not None:
        written = os.fstat(tmp.fileno()).st_size
    print("written %d" % written)


def writefile(vm, kind):
    if kind == "wronly":
        r, fd = pipe_pair()
        os.write(fd, b"from the caller\n")
    elif kind == "dgram":
        a, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        peer.send(b"from the caller\n")
        fd = a.fileno()
    else:
        raise SystemExit("unknown kind " + kind)
    conn = connect()
    print(call(conn, vm, "Agent1", "WriteFile", "shb", ["/tmp/vmsup-fdcall", dbus.types.UnixFd(fd), False]))


def fdon(vm, iface, method):
    r, w = pipe_pair()
    conn = connect()
    print(call(conn, vm, iface, method, "h", [dbus.types.UnixFd(w)]))


def connections(vm, n):
    conns = []
    outcomes = {}
    for _ in range(n):
        try:
            c = connect()
        except dbus.exceptions.DBusException as e:
            key = "connect-error %s" % e.get_dbus_name()
            outcomes[key] = outcomes.get(key, 0) + 1
            continue
        conns.append(c)
        res = call(c, vm, "VM1", "GetStatus", "", [])
        key = res if res.startswith("error") else "ok"
        outcomes[key] = outcomes.get(key, 0) + 1
    for k in sorted(outcomes):
        print("%s: %d" % (k, outcomes[k]))
    print("HOLDING", flush=True)
    while True:
        time.sleep(60)


def migrate_fd(kind, keep):
    if kind in ("dgram", "seqpacket", "unix"):
        t = {"dgram": socket.SOCK_DGRAM, "seqpacket": socket.SOCK_SEQPACKET, "unix": socket.SOCK_STREAM}[kind]
        a, b = socket.socketpair(socket.AF_UNIX, t)
        keep += [a, b]
        return a.fileno()
    if kind == "udp":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        keep.append(s)
        return s.fileno()
    if kind == "tcp":
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        s = socket.create_connection(listener.getsockname())
        keep += [listener, s]
        return s.fileno()
    if kind == "regular":
        f = tempfile.TemporaryFile()
        keep.append(f)
        return f.fileno()
    if kind == "opath":
        return os.open("/", os.O_PATH)
    r, w = os.pipe()
    return r if kind == "rdpipe" else w


def migrate(vm, method, kind, options="{}"):
    keep = []
    fd = migrate_fd(kind, keep)
    opts = eval(options, {"dbus": dbus, "disk": dbus.types.UnixFd(fd)})
    try:
        reply = connect().call_blocking("org.vmsup.VM." + vm, PATH, "org.vmsup.Migration1", method, "ha{sv}",
                                        [dbus.types.UnixFd(fd), opts], timeout=120)
        print("ok %s" % (reply,))
    except dbus.exceptions.DBusException as e:
        print("error %s: %s" % (e.get_dbus_name(), e.get_dbus_message()))


def main():
    cmd, vm = sys.argv[1], sys.argv[2]
    if cmd == "linger":
        linger(vm)
    elif cmd == "readfile":
        readfile(vm, *sys.argv[3:5])
    elif cmd == "writefile":
        writefile(vm, sys.argv[3])
    elif cmd == "fdon":
        fdon(vm, sys.argv[3], sys.argv[4])
    elif cmd == "migrate":
        migrate(vm, *sys.argv[3:6])
    elif cmd == "connections":
        connections(vm, int(sys.argv[3]))
    else:
        raise SystemExit("usage: see the head of " + sys.argv[0])


main()
