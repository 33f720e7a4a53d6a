"""Which catalog models each emulated firmware runs on, and how it names them.

A firmware reports a model string that pyasic maps to a miner class (its hashboard, chip
and fan counts). LuxOS and Braiins OS run on Antminers and report Bitmain's names;
Whatsminer firmware runs on MicroBT machines and reports a model with a hardware revision
(``M50S_VH30``). Braiins OS emulation covers the models pyasic drives through BOSer (gRPC):
X19 and X21, not the S9.
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.emulators.errors import EmulatorConfigError
from models.hardware import ASIC_CATALOG

LUXOS = "luxos"
WHATSMINER = "whatsminer"
BRAIINS = "braiins"
FIRMWARES: tuple[str, ...] = (LUXOS, WHATSMINER, BRAIINS)
"""Firmware personalities the emulator speaks."""


@dataclass(frozen=True, slots=True)
class MinerIdentity:
    """How one firmware presents one catalog model.

    Attributes:
        model_id: catalog key (``models.hardware.ASIC_CATALOG``).
        firmware: firmware personality (one of :data:`FIRMWARES`).
        reported_model: model string the firmware reports.
        chips_per_board: ASIC chips on each hashboard [-].
        fans: fans the firmware reports [-].
    """

    model_id: str
    firmware: str
    reported_model: str
    chips_per_board: int
    fans: int


_ANTMINER_HARDWARE: dict[str, tuple[str, int, int]] = {
    "antminer_s9": ("Antminer S9", 63, 2),
    "antminer_s19j_pro": ("Antminer S19j Pro", 126, 4),
    "antminer_s19_xp": ("Antminer S19 XP", 110, 4),
    "antminer_s21": ("Antminer S21", 108, 4),
    "antminer_s21_pro": ("Antminer S21 Pro", 65, 4),
}
"""Antminer model -> (Bitmain name, chips per board, fans)."""

_WHATSMINER_HARDWARE: dict[str, tuple[str, int, int]] = {
    "whatsminer_m50s": ("M50S_VH30", 156, 2),
    "whatsminer_m60s": ("M60S_VK10", 215, 2),
}
"""Whatsminer model -> (reported model with hardware revision, chips per board, fans)."""

_IDENTITIES: dict[tuple[str, str], MinerIdentity] = {
    **{
        (LUXOS, model_id): MinerIdentity(model_id, LUXOS, name, chips, fans)
        for model_id, (name, chips, fans) in _ANTMINER_HARDWARE.items()
    },
    **{
        (BRAIINS, model_id): MinerIdentity(model_id, BRAIINS, f"Bitmain {name}", chips, fans)
        for model_id, (name, chips, fans) in _ANTMINER_HARDWARE.items()
        if model_id != "antminer_s9"
    },
    **{
        (WHATSMINER, model_id): MinerIdentity(model_id, WHATSMINER, name, chips, fans)
        for model_id, (name, chips, fans) in _WHATSMINER_HARDWARE.items()
    },
}

DEFAULT_MODEL: dict[str, str] = {
    LUXOS: "antminer_s19j_pro",
    WHATSMINER: "whatsminer_m50s",
    BRAIINS: "antminer_s19j_pro",
}
"""The model a firmware runs on when none is asked for."""


def check_firmware(firmware: str) -> str:
    """``firmware`` if the emulator speaks it; EmulatorConfigError otherwise."""
    if firmware not in FIRMWARES:
        raise EmulatorConfigError(
            f"firmware: unknown firmware {firmware!r}; choose from {', '.join(FIRMWARES)}"
        )
    return firmware


def identity_for(firmware: str, model_id: str) -> MinerIdentity:
    """How ``firmware`` presents catalog model ``model_id``.

    Raises:
        EmulatorConfigError: unknown firmware or model, or a model the firmware does not
            run on (the message lists the models it does run on).
    """
    check_firmware(firmware)
    if model_id not in ASIC_CATALOG:
        raise EmulatorConfigError(
            f"model: unknown model_id {model_id!r}; choose from {', '.join(ASIC_CATALOG)}"
        )
    identity = _IDENTITIES.get((firmware, model_id))
    if identity is None:
        supported = sorted(m for f, m in _IDENTITIES if f == firmware)
        raise EmulatorConfigError(
            f"model: firmware {firmware!r} does not run on {model_id!r}; "
            f"it runs on {', '.join(supported)}"
        )
    return identity
