"""Sell deposit addresses, checked against the operator's signed xpub (embit).

The CAS proposes an address and a derivation index; the kiosk derives the address
itself from the xpub in the signed bundle (receive chain 0, native segwit p2wpkh)
and refuses anything that differs. No private key ever reaches the kiosk.
"""

from __future__ import annotations

from embit import bip32, script
from embit.networks import NETWORKS

MAX_INDEX = 2**31 - 1  # non-hardened child indexes only: an xpub cannot derive the others


class WalletError(ValueError):
    """An xpub, index or address that cannot be used; says which and why."""


def _public_versions(network: str) -> set[bytes]:
    net = NETWORKS.get(network)
    if net is None:
        raise WalletError(f"network {network!r} is not one of {sorted(NETWORKS)}")
    return {net[name] for name in ("xpub", "ypub", "zpub", "Ypub", "Zpub")}


def parse_xpub(text: str, network: str) -> bip32.HDKey:
    """The HD public key in `text`, refusing private keys and keys of another network."""
    versions = _public_versions(network)
    if not isinstance(text, str) or not text.isascii() or not 100 <= len(text) <= 120:
        raise WalletError("expected an extended public key (xpub/zpub/tpub/vpub...) as text")
    try:
        key = bip32.HDKey.from_string(text)
    except Exception as exc:  # embit raises several unrelated types for bad base58/checksums
        raise WalletError(f"not a valid extended public key ({type(exc).__name__}: {exc})") from None
    if key.is_private:
        raise WalletError("an extended PRIVATE key was given; the kiosk only ever takes an xpub")
    if key.version not in versions:
        raise WalletError(f"extended key version {key.version.hex()} is not a public key for network {network!r}")
    return key


def deposit_address(xpub: str, network: str, index: int) -> str:
    """The p2wpkh address at receive path 0/index of `xpub`."""
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= MAX_INDEX:
        raise WalletError(f"derivation index must be an integer 0..{MAX_INDEX}, got {index!r}")
    child = parse_xpub(xpub, network).derive([0, index])
    return script.p2wpkh(child.key).address(NETWORKS[network])


def address_derives_from_xpub(address: str, xpub: str, network: str, index: int) -> bool:
    return deposit_address(xpub, network, index) == address
