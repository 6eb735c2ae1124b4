"""The kassa wire contract: topics, the message envelope, message schemas and signed tokens.

Pure data, no network code. Agent and cloud code use it like this:

    from broker import contract as kc

    # publish
    env = kc.up_message(sale, device_id=dev, seq=next_seq, boot_id=boot, clock_trusted=True)
    pub = kc.publication(env)                # topic, payload bytes, qos=1, retain
    client.publish(pub.topic, pub.payload, qos=pub.qos, retain=pub.retain)

    # receive
    match kc.parse_message(msg.topic, msg.payload):
        case kc.Parsed(envelope=env):  ...   # env.body is a typed model
        case kc.Rejection() as r:      log.warning("dropped %s: %s", r.topic, r)
"""

from .batch import (
    BATCH_TOPIC_LEVEL,
    MAX_BATCH_BYTES,
    MAX_BATCH_MESSAGES,
    batch_device,
    batch_topic,
    encode_batch,
    parse_batch_line,
    split_batch,
)
from .envelope import (
    MAX_PAYLOAD_BYTES,
    MAX_STATE_DOC_BYTES,
    Body,
    Envelope,
    PayloadTooLargeError,
    Publication,
    UpDraft,
    body_json_of,
    down_message,
    draft_up,
    encode,
    encode_up,
    message_type_of,
    payload_limit,
    publication,
    status_message,
    up_message,
    will_publication,
)
from .fields import MAX_MINOR_UNITS
from .licence import (
    LeaseClaims,
    LicenceDoc,
    LicenceKeyError,
    ReleaseClaims,
    format_licence_key,
    normalize_licence_key,
)
from .messages import (
    Ack,
    AckRejection,
    BindRequest,
    Command,
    CommandName,
    DeviceState,
    ErrorInfo,
    Event,
    HeldLease,
    LeaseReport,
    LicenceKind,
    LicenceReport,
    Peripheral,
    PeripheralKind,
    Presence,
    ReleaseReceipt,
    Reply,
    StateDoc,
    Status,
    Tombstone,
)
from .pairing import (
    PairingCodeError,
    PairingProofError,
    format_pairing_code,
    new_pairing_code,
    normalize_pairing_code,
)
from .parse import Parsed, parse_message
from .provisioning import Provisioning, ProvisioningError, looks_like_provisioning, make_qr_text, read_qr_text
from .rejection import Rejection, RejectReason
from .roster import CashierRole, PinHashError, RosterCashier, RosterDoc, hash_pin, verify_pin
from .sales import (
    Payment,
    PaymentMethod,
    PaymentTotal,
    Refund,
    RefundLine,
    RefundScope,
    Sale,
    SaleLine,
    TaxLine,
    ZReport,
    line_gross,
)
from .topics import (
    CLOUD_INGEST_SUBSCRIPTION,
    CLOUD_STATUS_SUBSCRIPTION,
    DEVICE_ACL_LINES,
    PROTOCOL_VERSION,
    QOS,
    InvalidDeviceIdError,
    MessageType,
    StateDomain,
    TopicInfo,
    ack_topic,
    check_device_id,
    cmd_topic,
    device_subscription,
    is_retained,
    is_valid_device_id,
    parse_topic,
    state_topic,
    status_topic,
    topic_for,
    up_topic,
)
from .uuid7 import is_uuid7, make_uuid7, uuid7, uuid7_unix_ms

# The public names, by the part of the contract they belong to.
# topics
__all__ = [
    "CLOUD_INGEST_SUBSCRIPTION",
    "CLOUD_STATUS_SUBSCRIPTION",
    "DEVICE_ACL_LINES",
    "PROTOCOL_VERSION",
    "QOS",
    "InvalidDeviceIdError",
    "MessageType",
    "StateDomain",
    "TopicInfo",
    "ack_topic",
    "check_device_id",
    "cmd_topic",
    "device_subscription",
    "is_retained",
    "is_valid_device_id",
    "parse_topic",
    "state_topic",
    "status_topic",
    "topic_for",
    "up_topic",
]

# envelope
__all__ += [
    "MAX_MINOR_UNITS",
    "MAX_PAYLOAD_BYTES",
    "MAX_STATE_DOC_BYTES",
    "Body",
    "Envelope",
    "PayloadTooLargeError",
    "Publication",
    "UpDraft",
    "body_json_of",
    "down_message",
    "draft_up",
    "encode",
    "encode_up",
    "message_type_of",
    "payload_limit",
    "publication",
    "status_message",
    "up_message",
    "will_publication",
]

# parsing
__all__ += [
    "Parsed",
    "RejectReason",
    "Rejection",
    "parse_message",
]

# batches
__all__ += [
    "BATCH_TOPIC_LEVEL",
    "MAX_BATCH_BYTES",
    "MAX_BATCH_MESSAGES",
    "batch_device",
    "batch_topic",
    "encode_batch",
    "parse_batch_line",
    "split_batch",
]

# bodies
__all__ += [
    "Ack",
    "AckRejection",
    "BindRequest",
    "Command",
    "CommandName",
    "DeviceState",
    "ErrorInfo",
    "Event",
    "HeldLease",
    "LeaseReport",
    "LicenceKind",
    "LicenceReport",
    "Payment",
    "PaymentMethod",
    "PaymentTotal",
    "Peripheral",
    "PeripheralKind",
    "Presence",
    "Refund",
    "RefundLine",
    "RefundScope",
    "ReleaseReceipt",
    "Reply",
    "Sale",
    "SaleLine",
    "StateDoc",
    "Status",
    "TaxLine",
    "Tombstone",
    "ZReport",
    "line_gross",
]

# configuration QR codes
__all__ += [
    "Provisioning",
    "ProvisioningError",
    "looks_like_provisioning",
    "make_qr_text",
    "read_qr_text",
]

# pairing (request and reply models: broker.contract.pairing)
__all__ += [
    "PairingCodeError",
    "PairingProofError",
    "format_pairing_code",
    "new_pairing_code",
    "normalize_pairing_code",
]

# licences (tokens and release files: broker.contract.licence)
__all__ += [
    "LeaseClaims",
    "LicenceDoc",
    "LicenceKeyError",
    "ReleaseClaims",
    "format_licence_key",
    "normalize_licence_key",
]

# cashiers (broker.contract.roster)
__all__ += [
    "CashierRole",
    "PinHashError",
    "RosterCashier",
    "RosterDoc",
    "hash_pin",
    "verify_pin",
]

# ids
__all__ += [
    "is_uuid7",
    "make_uuid7",
    "uuid7",
    "uuid7_unix_ms",
]
