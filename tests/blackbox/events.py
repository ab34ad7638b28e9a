#!/usr/bin/python3
# A real client on the bus for the VM's signals (python3-dbus); the bus address comes from
# DBUS_SYSTEM_BUS_ADDRESS.
#
#   events.py follow VM [subscribe]
#       adds match rules for every signal of org.vmsup.VM.VM (one of them eavesdrop='true'),
#       subscribes if asked, prints "READY SEQ" ("READY -" without subscribing, "error NAME"
#       and exits 1 when Subscribe fails), then one line per signal from the VM that reaches
#       this connection:
#         "S NAME DATA"            StateChanged (NAME StateChanged, DATA {"state":..,"reason":..})
#                                  and Event (QMP event name and data), as GetEvents has them
#         "P IFACE PROP=VALUE..."  PropertiesChanged
#         "X MEMBER"               anything else
#       Commands on stdin, one a line:
#         sync          Peer.Ping the VM's supervisor, then print "SYNCED": every signal it sent
#                       to this connection before has been printed by then (the bus keeps one
#                       sender's messages to one receiver in order)
#         events SINCE  GetEvents(SINCE): "G SEQ NAME DATA" lines, then "END"
#         unsubscribe   Unsubscribe, then "UNSUBSCRIBED"
#   events.py call VM METHOD [SINCE]
#       Subscribe, Unsubscribe, GetEvents (SINCE) once: prints the reply or "error NAME"
#   events.py many VM N
#       N connections, each calling Subscribe; prints "ok K busy B other O", then "HOLDING", and
#       keeps them open until its stdin ends
import json
import os
import sys

import dbus
import dbus.lowlevel
from dbus.mainloop.glib import DBusGMainLoop
from gi.repository import GLib

ADDRESS = os.environ["DBUS_SYSTEM_BUS_ADDRESS"]
PATH = "/org/vmsup/VM"
IFACE = "org.vmsup.VM1"


def out(*parts):
    print(*parts, flush=True)


def err_name(e):
    return e.get_dbus_name() if isinstance(e, dbus.exceptions.DBusException) else type(e).__name__


def compact(v):
    return json.dumps(v, separators=(",", ":"))


def one_call(vm, method, args):
    conn = dbus.bus.BusConnection(ADDRESS)
    sig = "t" if method == "GetEvents" else ""
    try:
        reply = conn.call_blocking("org.vmsup.VM." + vm, PATH, IFACE, method, sig,
                                   [dbus.UInt64(int(a)) for a in args], timeout=60)
    except dbus.exceptions.DBusException as e:
        out("error", err_name(e))
        return 1
    if method == "GetEvents":
        for seq, name, data, ts in reply:
            out("G", int(seq), name, data)
        out("END", len(reply))
    else:
        out("reply", "" if reply is None else int(reply))
    return 0


def many(vm, n):
    conns, counts = [], {"ok": 0, "busy": 0, "other": 0}
    for _ in range(n):
        conn = dbus.bus.BusConnection(ADDRESS)
        conns.append(conn)
        try:
            conn.call_blocking("org.vmsup.VM." + vm, PATH, IFACE, "Subscribe", "", [], timeout=60)
            counts["ok"] += 1
        except dbus.exceptions.DBusException as e:
            counts["busy" if err_name(e) == "org.vmsup.Error.Busy" else "other"] += 1
    out("ok", counts["ok"], "busy", counts["busy"], "other", counts["other"])
    out("HOLDING")
    sys.stdin.read()
    return 0


def follow(vm, subscribe):
    DBusGMainLoop(set_as_default=True)
    conn = dbus.bus.BusConnection(ADDRESS)
    dest = "org.vmsup.VM." + vm
    owner = conn.get_name_owner(dest)
    loop = GLib.MainLoop()

    def on_message(c, msg):
        if not isinstance(msg, dbus.lowlevel.SignalMessage):
            return
        if msg.get_sender() != owner:
            return
        member, args = msg.get_member(), msg.get_args_list()
        if member == "StateChanged":
            out("S", "StateChanged", compact({"state": str(args[0]), "reason": str(args[1])}))
        elif member == "Event":
            out("S", str(args[0]), str(args[1]))
        elif member == "PropertiesChanged":
            out("P", str(args[0]), *sorted("%s=%s" % (k, v) for k, v in args[1].items()))
        else:
            out("X", member)

    conn.add_message_filter(on_message)
    # What any client may ask the bus for: every signal of the VM, and eavesdropping on
    # messages addressed to others (dbus-daemon's policy decides what it delivers).
    for rule in ("type='signal',sender='%s'" % dest,
                 "type='signal',path='%s'" % PATH,
                 "type='signal',sender='%s',eavesdrop='true'" % dest,
                 "type='signal',interface='org.freedesktop.DBus.Properties',eavesdrop='true'"):
        try:
            conn.add_match_string(rule)
        except dbus.exceptions.DBusException as e:
            out("# match refused:", rule, err_name(e))
    if subscribe:
        try:
            seq = conn.call_blocking(dest, PATH, IFACE, "Subscribe", "", [], timeout=60)
        except dbus.exceptions.DBusException as e:
            out("error", err_name(e))
            return 1
        out("READY", int(seq))
    else:
        out("READY", "-")

    def on_stdin(source, cond):
        line = sys.stdin.readline()
        if not line:
            loop.quit()
            return False
        words = line.split()
        if not words:
            return True
        if words[0] == "sync":
            conn.call_async(dest, PATH, "org.freedesktop.DBus.Peer", "Ping", "", [],
                            lambda *a: out("SYNCED"), lambda e: out("SYNC-ERROR", err_name(e)))
        elif words[0] == "events":
            def got(reply):
                for seq, name, data, ts in reply:
                    out("G", int(seq), name, data)
                out("END")
            conn.call_async(dest, PATH, IFACE, "GetEvents", "t", [dbus.UInt64(int(words[1]))], got,
                            lambda e: out("error", err_name(e)))
        elif words[0] == "unsubscribe":
            conn.call_async(dest, PATH, IFACE, "Unsubscribe", "", [], lambda *a: out("UNSUBSCRIBED"),
                            lambda e: out("error", err_name(e)))
        elif words[0] == "quit":
            loop.quit()
        return True

    GLib.io_add_watch(sys.stdin, GLib.IO_IN | GLib.IO_HUP, on_stdin)
    loop.run()
    return 0


def main():
    mode, vm = sys.argv[1], sys.argv[2]
    if mode == "follow":
        return follow(vm, len(sys.argv) > 3 and sys.argv[3] == "subscribe")
    if mode == "call":
        return one_call(vm, sys.argv[3], sys.argv[4:])
    if mode == "many":
        return many(vm, int(sys.argv[3]))
    raise SystemExit("unknown mode " + mode)


if __name__ == "__main__":
    sys.exit(main())
