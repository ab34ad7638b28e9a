/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Where QEMU lives under systemd. A running QEMU is registered with systemd-machined
 * (CreateMachine, class vm, leader QEMU): it moves into machine-NAME.scope under
 * machine.slice, out of the service's cgroup, so that systemd does not kill it with a
 * supervisor that dies, and machinectl lists it. Without machined, a transient scope
 * vmsup-NAME.scope in machine.slice through systemd's manager; without systemd (a private
 * bus, a container without it), nothing. Every step is an asynchronous call: the loop is
 * never blocked, and a failure is logged and changes nothing else. The scope keeps the
 * unit's device policy (only /dev/kvm, /dev/net/tun, /dev/vhost-net beyond the standard
 * pseudo devices). */

#include <sys/types.h>

#include <systemd/sd-bus.h>

typedef struct Machined Machined;

/* Registers QEMU pid for the VM name, once per pid (a second call for the same pid does
 * nothing; an already registered machine, after a reattach, is fine). */
void machined_register(sd_bus *bus, const char *name, pid_t pid);
/* Forgets the pending call, if any (at exit). */
void machined_forget(void);
