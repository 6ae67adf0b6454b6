"""Unit conversions. Energy is joules inside, kWh on screen; power in watts."""

from __future__ import annotations

BTU_H_PER_W = 3.412141633  # 1 W of heat = 3.412 BTU/h
J_PER_KWH = 3_600_000.0


def w_to_btu_h(watts: float) -> float:
    return watts * BTU_H_PER_W


def j_to_kwh(joules: float) -> float:
    return joules / J_PER_KWH


def kwh_to_j(kwh: float) -> float:
    return kwh * J_PER_KWH


def c_to_f(celsius: float) -> float:
    return celsius * 9.0 / 5.0 + 32.0
