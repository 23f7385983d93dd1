"""The labeler as an action sink: enforced ``label.add`` / ``label.remove`` actions become signed labels in the
label log (``neg: true`` for a removal), which :mod:`bastion.labeler.routes` serves."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bastion.actions.effects import LABEL_ADD, LABEL_REMOVE, AppliedAction
from bastion.labeler.keys import LabelerKeyError, SigningKey
from bastion.labeler.labels import (
    CID_RE,
    DID_RE,
    LabelError,
    ValueMap,
    parse_rfc3339_ms,
    rfc3339_ms,
    sign_label,
    subject_uri,
    unsigned_label,
)
from bastion.labeler.log import LabelLog
from bastion.settings import Settings, SettingsError

log = logging.getLogger("bastion.labeler")


class LabelerSink:
    """Signs and logs labels for the engine's label actions. ``skipped`` counts the label actions that were not
    published, by reason (shadow, unmapped label, subject without an atproto identity, already expired)."""

    def __init__(self, label_log: LabelLog, key: SigningKey, did: str, values: ValueMap | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        if not DID_RE.match(did):
            raise LabelError(f"labeler DID {did!r} is not a DID (did:plc:... or did:web:...)")
        self.log = label_log
        self.key = key
        self.did = did
        self.values = values or ValueMap()
        self.clock = clock
        self.published = 0
        self.skipped: Counter[str] = Counter()

    def label_for(self, action: AppliedAction) -> dict[str, Any] | None:
        """The signed label an action publishes, or None (and why, in ``skipped``)."""
        if action.action not in (LABEL_ADD, LABEL_REMOVE) or not action.label:
            return None
        if action.stage == "shadow":
            self.skipped["shadow"] += 1
            return None
        val = self.values.value_of(action.label)
        if val is None:
            self.skipped["unmapped label"] += 1
            return None
        uri = subject_uri(action.subject.kind, action.subject.id)
        if uri is None:
            self.skipped[f"{action.subject.kind} without an atproto id"] += 1
            return None
        now_ms = int(self.clock() * 1000)
        exp = None
        if action.action == LABEL_ADD and action.expires:
            exp_ms = parse_rfc3339_ms(action.expires)
            if exp_ms <= now_ms:
                self.skipped["expired before publication"] += 1
                return None
            exp = rfc3339_ms(exp_ms)
        cid = action.evidence.get("cid") if action.subject.kind == "post" else None
        label = unsigned_label(self.did, uri, val, rfc3339_ms(now_ms),
                               cid=cid if isinstance(cid, str) and CID_RE.match(cid) else None,
                               neg=action.action == LABEL_REMOVE, exp=exp)
        return sign_label(label, self.key)

    def write_action(self, action: AppliedAction) -> None:
        label = self.label_for(action)
        if label is not None:
            self.log.append(label, action_id=action.id)
            self.published += 1

    def write_dead_letter(self, line: int | None, error: str, raw: str) -> None:
        return None

    def flush(self) -> None:
        return None  # every label is committed as it is appended

    def metrics(self) -> dict[str, Any]:
        return {"published": self.published, "skipped": dict(self.skipped), "head": self.log.head()}

    def close(self) -> None:
        self.log.close()


def label_db_path(settings: Settings) -> Path:
    return settings.labeler_db_path or Path(settings.db_path).parent / "labels.db"


def load_key(settings: Settings) -> SigningKey:
    """The labeler's key from ``labeler_key`` (the key text, e.g. from BASTION_LABELER_KEY) or
    ``labeler_key_path``; :class:`SettingsError` naming what is missing or wrong."""
    try:
        if settings.labeler_key:
            return SigningKey.from_text(settings.labeler_key)
        if settings.labeler_key_path:
            return SigningKey.from_file(Path(settings.labeler_key_path))
    except LabelerKeyError as exc:
        raise SettingsError(f"labeler key: {exc}") from None
    raise SettingsError("the labeler needs a key: set labeler_key_path (make one with "
                        "`bastion labeler keygen --out PATH`) or BASTION_LABELER_KEY")


def build_labeler_sink(settings: Settings) -> LabelerSink:
    """The sink from settings (``labeler_did``, the key, ``labeler_values``, ``labeler_publish_unmapped``)."""
    if not settings.labeler_did:
        raise SettingsError("labeler_enabled needs labeler_did (the labeler account's DID)")
    if not DID_RE.match(settings.labeler_did):
        raise SettingsError(f"setting labeler_did: {settings.labeler_did!r} is not a DID")
    key = load_key(settings)
    try:
        values = ValueMap(settings.labeler_values, settings.labeler_publish_unmapped)
    except LabelError as exc:
        raise SettingsError(f"setting labeler_values: {exc}") from None
    return LabelerSink(LabelLog(label_db_path(settings)), key, settings.labeler_did, values)
