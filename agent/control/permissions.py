"""Who is on the other end of the control socket, and what they may do.

The kernel tells us the peer's uid/gid (SO_PEERCRED); we map that to a role
through group membership. Tests replace ``Authorizer.lookup_groups`` to stand in
for users that do not exist on the test machine.
"""

from __future__ import annotations

import enum
import grp
import os
import pwd
import socket
import struct
from dataclasses import dataclass


class Role(enum.IntEnum):
    NONE = 0
    READ = 1  # see status, devices, logs
    ADMIN = 2  # change configuration, licence, hardware actions


@dataclass(frozen=True)
class PeerCredentials:
    pid: int
    uid: int
    gid: int


def peer_credentials(sock: socket.socket) -> PeerCredentials:
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return PeerCredentials(pid, uid, gid)


class Authorizer:
    def __init__(self, admin_group: str, read_group: str) -> None:
        self.admin_group = admin_group
        self.read_group = read_group

    def role_of(self, peer: PeerCredentials) -> Role:
        # root and the agent's own service user administer the agent.
        if peer.uid == 0 or peer.uid == os.geteuid():
            return Role.ADMIN
        groups = self.lookup_groups(peer.uid, peer.gid)
        if self.admin_group in groups:
            return Role.ADMIN
        if self.read_group in groups:
            return Role.READ
        return Role.NONE

    def lookup_groups(self, uid: int, gid: int) -> set[str]:
        names = set()
        try:
            user = pwd.getpwuid(uid).pw_name
            gids = set(os.getgrouplist(user, gid))
        except KeyError:  # a uid without a passwd entry has only its primary group
            gids = {gid}
        for g in gids:
            try:
                names.add(grp.getgrgid(g).gr_name)
            except KeyError:
                continue
        return names
