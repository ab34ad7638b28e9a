#!/usr/bin/python3
# first-calls.py ADDRESS VM CALL...: makes each CALL as the first message of a fresh
# bus connection and prints one line per call: "NAME ok VALUE" or "NAME error
# ERROR: MESSAGE". A fresh connection's first call always waits in the supervisor
# while the caller's credentials are fetched, so this exercises that path for
# every method named.
#
# first-calls.py --pipelined ADDRESS VM CALL...: sends every CALL at once on one
# fresh connection, before any answer can arrive (so all of them wait for the
# credentials), and prints the answers in the order they arrive.
#
# CALL is NAME, one of the keys of CALLS below.
import os
import sys

import dbus
import dbus.lowlevel
import dbus.mainloop.glib
from gi.repository import GLib

PATH = "/org/vmsup/VM"
VM1, MON1, AGENT1 = "org.vmsup.VM1", "org.vmsup.Monitor1", "org.vmsup.Agent1"
PROPS = "org.freedesktop.DBus.Properties"


def fd_for(mode):
    # A descriptor the call may use: one end of a pipe, readable or writable as asked.
    r, w = os.pipe()
    keep, other = (r, w) if mode == os.O_RDONLY else (w, r)
    os.close(other)
    return dbus.types.UnixFd(keep)


# NAME: (interface, member, signature, arguments as a function, so descriptors are fresh)
CALLS = {
    "VM1.Start": (VM1, "Start", "", lambda: []),
    "VM1.Shutdown": (VM1, "Shutdown", "ub", lambda: [0, False]),
    "VM1.Shutdown-too-long": (VM1, "Shutdown", "ub", lambda: [86401, False]),
    "VM1.Shutdown-bad-signature": (VM1, "Shutdown", "s", lambda: ["x"]),
    "VM1.Stop": (VM1, "Stop", "", lambda: []),
    "VM1.Reset": (VM1, "Reset", "", lambda: []),
    "VM1.Pause": (VM1, "Pause", "", lambda: []),
    "VM1.Resume": (VM1, "Resume", "", lambda: []),
    "VM1.SendKey": (VM1, "SendKey", "asu", lambda: [["shift"], 0]),
    "VM1.SendKey-no-keys": (VM1, "SendKey", "asu", lambda: [[], 0]),
    "VM1.GetStatus": (VM1, "GetStatus", "", lambda: []),
    "VM1.Nonexistent": (VM1, "Nonexistent", "", lambda: []),
    "Monitor1.HumanCommand": (MON1, "HumanCommand", "s", lambda: ["info status"]),
    "Monitor1.Execute": (MON1, "Execute", "s", lambda: ['{"execute":"query-status"}']),
    "Agent1.Command": (AGENT1, "Command", "s", lambda: ['{"execute":"guest-ping"}']),
    "Agent1.ReadFile": (AGENT1, "ReadFile", "stth", lambda: ["/etc/hostname", 0, 0, fd_for(os.O_WRONLY)]),
    "Agent1.WriteFile": (AGENT1, "WriteFile", "shb", lambda: ["/tmp/x", fd_for(os.O_RDONLY), False]),
    "Properties.Get": (PROPS, "Get", "ss", lambda: [VM1, "State"]),
    "Properties.GetAll": (PROPS, "GetAll", "s", lambda: [VM1]),
    "Properties.GetAll-Monitor1": (PROPS, "GetAll", "s", lambda: [MON1]),
    "Properties.Set": (PROPS, "Set", "ssv", lambda: [VM1, "State", dbus.String("running", variant_level=1)]),
}


def show(value):
    if isinstance(value, dbus.Dictionary):
        return "{" + ",".join(sorted(str(k) for k in value.keys())) + "}"
    if isinstance(value, (list, tuple)):
        return " ".join(show(v) for v in value)
    return str(value)


def describe(name, reply):
    if reply.get_type() == dbus.lowlevel.MESSAGE_TYPE_ERROR:
        args = reply.get_args_list()
        return "%s error %s: %s" % (name, reply.get_error_name(), args[0] if args else "")
    return ("%s ok %s" % (name, show(reply.get_args_list()))).rstrip()


def new_call(dest, name):
    iface, member, sig, args = CALLS[name]
    m = dbus.lowlevel.MethodCallMessage(dest, PATH, iface, member)
    if sig:
        m.append(signature=sig, *args())
    return m


def main():
    pipelined = sys.argv[1] == "--pipelined"
    argv = sys.argv[2:] if pipelined else sys.argv[1:]
    address, vm, names = argv[0], argv[1], argv[2:]
    dest = "org.vmsup.VM." + vm
    dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
    loop = GLib.MainLoop()

    def run(batch):
        # One fresh connection; every call of batch is written before any answer is read.
        conn = dbus.bus.BusConnection(address)
        answers = []
        serials = {}

        def on_message(c, msg):
            if msg.get_type() in (dbus.lowlevel.MESSAGE_TYPE_METHOD_RETURN, dbus.lowlevel.MESSAGE_TYPE_ERROR):
                n = serials.get(msg.get_reply_serial())
                if n is not None:
                    answers.append(describe(n, msg))
                    if len(answers) == len(batch):
                        loop.quit()
            return dbus.lowlevel.HANDLER_RESULT_NOT_YET_HANDLED

        conn.add_message_filter(on_message)
        for n in batch:
            serials[conn.send_message(new_call(dest, n))] = n
        conn.flush()
        timer = GLib.timeout_add_seconds(120, loop.quit)
        loop.run()
        GLib.source_remove(timer)
        conn.close()
        return answers

    if pipelined:
        for line in run(names):
            print(line)
    else:
        for n in names:
            for line in run([n]):
                print(line)


main()
