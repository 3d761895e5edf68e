"""What the coordinator and the worker agree on about robots.txt (RFC 9309): the states the fleet
keeps a host's robots.txt in, how large a file is read, and the failure class of a job whose URL
the rules disallow. docs/politeness.md ("robots.txt") explains the whole."""

from __future__ import annotations

from enum import StrEnum

from crawlfleet.v1 import job_queue_pb2 as pb

# RFC 9309 §2.5: parsers must read at least 500 KiB; what lies beyond is not read.
MAX_BODY_BYTES = 500 * 1024
# RFC 9309 §2.3.1.2: follow at least five consecutive redirects.
MAX_REDIRECTS = 5
# A job whose URL the rules disallow fails with this class and retryable false: it ends skipped.
DISALLOWED_ERROR_TYPE = "robots_disallowed"
ROBOTS_PATH = "/robots.txt"


def skips_job(error_type: str, *, retryable: bool, release: bool) -> bool:
    """Whether a failure ends the job skipped rather than failed: robots.txt disallows its URL, which
    no retry changes (a failure the worker calls retryable, or a release, keeps its usual meaning)."""
    return error_type == DISALLOWED_ERROR_TYPE and not retryable and not release


class RobotsState(StrEnum):
    """A host's robots.txt as the fleet holds it; the values are hosts.robots_state's."""

    UNKNOWN = "unknown"  # never fetched
    RULES = "rules"  # 2xx: a body to obey
    ALLOW_ALL = "allow_all"  # unavailable (4xx): no rules
    UNREACHABLE = "unreachable"  # 5xx, 429 or no answer: complete disallow, the host paused

    def to_proto(self) -> pb.RobotsState.ValueType:
        return pb.RobotsState.Value("ROBOTS_STATE_" + self.name)

    @classmethod
    def from_proto(cls, value: int) -> RobotsState:
        """The state of a RobotsState value; UNSPECIFIED and unknown numbers are UNKNOWN."""
        name = pb.RobotsState.Name(pb.RobotsState.ValueType(value)) if value in pb.RobotsState.values() else ""
        return cls.__members__.get(name.removeprefix("ROBOTS_STATE_"), cls.UNKNOWN)
