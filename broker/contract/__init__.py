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

__all__ = [
    # topics
    "PROTOCOL_VERSION",
    "QOS",
    "DEVICE_ACL_LINES",
    "CLOUD_INGEST_SUBSCRIPTION",
    "CLOUD_STATUS_SUBSCRIPTION",
    "MessageType",
    "StateDomain",
    "TopicInfo",
    "InvalidDeviceIdError",
    "is_valid_device_id",
    "check_device_id",
    "up_topic",
    "ack_topic",
    "state_topic",
    "cmd_topic",
    "status_topic",
    "device_subscription",
    "topic_for",
    "is_retained",
    "parse_topic",
    # envelope
    "MAX_PAYLOAD_BYTES",
    "MAX_STATE_DOC_BYTES",
    "MAX_MINOR_UNITS",
    "Body",
    "Envelope",
    "Publication",
    "PayloadTooLargeError",
    "payload_limit",
    "message_type_of",
    "up_message",
    "down_message",
    "status_message",
    "encode",
    "encode_up",
    "UpDraft",
    "draft_up",
    "body_json_of",
    "publication",
    "will_publication",
    # parsing
    "Parsed",
    "parse_message",
    "RejectReason",
    "Rejection",
    # batches
    "BATCH_TOPIC_LEVEL",
    "MAX_BATCH_MESSAGES",
    "MAX_BATCH_BYTES",
    "batch_topic",
    "batch_device",
    "encode_batch",
    "split_batch",
    "parse_batch_line",
    # bodies
    "Sale",
    "SaleLine",
    "TaxLine",
    "Payment",
    "PaymentMethod",
    "line_gross",
    "Refund",
    "ZReport",
    "PaymentTotal",
    "RefundLine",
    "RefundScope",
    "LicenceKind",
    "LicenceReport",
    "LeaseReport",
    "HeldLease",
    "Tombstone",
    "ReleaseReceipt",
    "BindRequest",
    "DeviceState",
    "Peripheral",
    "PeripheralKind",
    "Reply",
    "ErrorInfo",
    "Event",
    "Ack",
    "AckRejection",
    "StateDoc",
    "Command",
    "CommandName",
    "Status",
    "Presence",
    # configuration QR codes
    "Provisioning",
    "ProvisioningError",
    "make_qr_text",
    "read_qr_text",
    "looks_like_provisioning",
    # pairing (request and reply models: broker.contract.pairing)
    "PairingCodeError",
    "PairingProofError",
    "new_pairing_code",
    "normalize_pairing_code",
    "format_pairing_code",
    # licences (tokens and release files: broker.contract.licence)
    "LeaseClaims",
    "ReleaseClaims",
    "LicenceDoc",
    "LicenceKeyError",
    "normalize_licence_key",
    "format_licence_key",
    # cashiers (broker.contract.roster)
    "CashierRole",
    "RosterCashier",
    "RosterDoc",
    "PinHashError",
    "hash_pin",
    "verify_pin",
    # ids
    "uuid7",
    "make_uuid7",
    "is_uuid7",
    "uuid7_unix_ms",
]
