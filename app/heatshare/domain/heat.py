"""Turn sensor snapshots into heat: power now, energy per interval, and where each came from.

All electrical power a computer draws ends up as heat in the room, so heat output is the sum of
the power of the parts we can see. Each part is measured the best way its hardware allows:

* a GPU by its NVML total-energy counter (the delta between two reads), else by its power
  readings integrated with the trapezoid rule, else not at all (``None``: a GPU is never
  estimated). Reading that counter costs milliseconds of driver time on some cards, so the
  sensor may read it only every few ticks: the ticks between book no GPU energy and show the
  card's power reading, and the tick that reads it books the whole delta since the last read;
  the totals stay exactly the counter's;
* the CPU by its RAPL package counters, else by a utilisation model (labelled an estimate);
* the rest of the system by a configured figure (also an estimate), only when it is above zero.

A smart plug at the wall, where one is set up, measures all of that at once, the power supply's
losses included, so while it answers its figure is the heat: power from its reading, energy from
the deltas of its own energy counter. The parts are still accounted every tick (each keeps its
baselines and is shown on its own), so when the plug goes away the heat falls back at once to
them (energy counters, then the estimate), and to the plug again when it comes back. Each
interval is booked by exactly one source, never by both.

Pure: no I/O and no clock reads; every time comes in the snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass

from heatshare.domain.readings import GpuReading, Provenance, RaplReading, Snapshot

# A counter delta implying more than this many times the card's maximum power limit is not
# energy, it is a counter that was reset or replaced (driver reload, GPU reset, wrap of a
# counter the driver re-based); 1.5 leaves room for short excursions above the limit.
IMPLAUSIBLE_FACTOR = 1.5
# The ceiling for a device whose power limit is unknown: above any single consumer GPU or CPU
# package sold so far, and far below what a reset counter's jump implies.
UNKNOWN_MAX_POWER_W = 1500.0
# The most a plug can pass: a 16 A socket at 230 V. A counter delta beyond it is a reset.
PLUG_MAX_POWER_W = 3680.0
# A plug's energy counter moves in steps (Tasmota's total: 1 Wh at its default resolution), and
# one step may fall in a short interval: it is allowed on top of the power ceiling.
PLUG_COUNTER_STEP_J = 3600.0
PLUG = "plug"  # the name of the plug's figure in a HeatTick


@dataclass(frozen=True, slots=True)
class EstimateModel:
    """A linear CPU power model: idle power at 0 %, maximum power at 100 % utilisation."""

    cpu_idle_w: float
    cpu_max_w: float

    def cpu_power_w(self, cpu_pct: float) -> float:
        """Estimated CPU power at ``cpu_pct`` (clamped to 0–100 %)."""
        share = min(max(cpu_pct, 0.0), 100.0) / 100.0
        return self.cpu_idle_w + (self.cpu_max_w - self.cpu_idle_w) * share


@dataclass(frozen=True, slots=True)
class ComponentPower:
    """One part's power this tick; ``name`` is ``"gpu0"``, ``"gpu1"``, …, ``"cpu"`` or ``"rest"``.

    ``power_w`` is None (and ``provenance`` with it) where the part cannot be measured.
    ``energy_j`` is the part's energy over this tick's interval (0 where nothing was integrated).
    """

    name: str
    power_w: float | None
    provenance: Provenance | None
    energy_j: float = 0.0


@dataclass(frozen=True, slots=True)
class PlugReading:
    """What a smart plug at the wall said once; its error sentence where it said nothing usable.

    ``energy_total_j`` is the plug's own cumulative counter (it may restart from zero when the
    plug does); ``power_w`` the power it measured as it answered.
    """

    power_w: float | None = None
    energy_total_j: float | None = None
    error: str | None = None
    voltage_v: float | None = None
    current_a: float | None = None

    @property
    def usable(self) -> bool:
        """No error, and at least one figure to account."""
        return self.error is None and (self.power_w is not None or self.energy_total_j is not None)


@dataclass(frozen=True, slots=True)
class HeatTick:
    """The heat of one sampler tick.

    ``dt_s`` is the interval integrated (0 on the first tick and after a gap); ``energy_j`` the
    heat delivered over it; ``heat_w`` the power now and ``provenance`` where both come from.

    While a plug measures (``plug`` is set), they are the plug's figures, with provenance PLUG.
    Otherwise ``energy_j`` is the sum of the components' energies, ``heat_w`` the sum of the
    known components' power (None when none is known) and ``provenance`` the worst source among
    them: a total is only as good as its weakest part.

    ``components`` are the parts as their own sensors saw them, in every tick (with a plug too:
    the difference is what the sensors cannot see). ``plug_error`` says why a plug that was
    given is not the source this tick.
    """

    dt_s: float
    heat_w: float | None
    provenance: Provenance | None
    energy_j: float
    components: tuple[ComponentPower, ...]
    plug: ComponentPower | None = None
    plug_error: str | None = None

    def component(self, name: str) -> ComponentPower | None:
        """The component called ``name``, or None."""
        for c in self.components:
            if c.name == name:
                return c
        return None


@dataclass(slots=True)
class _GpuState:
    power_w: float | None  # the previous tick's power reading
    anchor_mj: int | None = None  # the last counter read, while the span since it is unbroken
    span_s: float = 0.0  # seconds since that read
    span_power_j: float | None = 0.0  # the power readings' energy over the span (for a reset)
    last_counter_w: float | None = None  # the counter's mean power over the last span


@dataclass(slots=True)
class _PlugState:
    power_w: float | None  # the previous tick's power reading
    total_j: float | None  # the previous tick's counter: the baseline of the next delta


class HeatAccountant:
    """Integrates heat tick by tick, keeping the previous counters as baselines.

    Args:
        estimate: the CPU utilisation model used where RAPL is not readable.
        rest_of_system_w: heat the sensors cannot see (board, drives, fans, PSU losses).
        max_gap_s: a longer interval between two snapshots is not integrated.
    """

    def __init__(
        self,
        *,
        estimate: EstimateModel,
        rest_of_system_w: float = 0.0,
        max_gap_s: float = 5.0,
    ) -> None:
        self._estimate = estimate
        self._rest_w = rest_of_system_w
        self._max_gap_s = max_gap_s
        self._last_mono: float | None = None
        self._gpus: dict[str, _GpuState] = {}
        self._rapl: dict[str, RaplReading] = {}
        self._plug: _PlugState | None = None  # None: the plug did not measure the last tick

    def configure(self, *, estimate: EstimateModel, rest_of_system_w: float) -> None:
        """Change the settings-driven figures; the counters' baselines are kept."""
        self._estimate = estimate
        self._rest_w = rest_of_system_w

    def forget_plug(self) -> None:
        """Drop the plug's baseline (another plug was set up: its counter is not comparable)."""
        self._plug = None

    def update(self, snap: Snapshot, plug: PlugReading | None = None) -> HeatTick:
        """Account one snapshot: power now, and the energy since the previous one.

        ``plug`` is the wall plug's reading taken with this snapshot, where a plug is set up.
        """
        dt = None if self._last_mono is None else snap.mono_s - self._last_mono
        # The first tick has no interval. After a gap (sleep and resume, a paused or stalled
        # sampler) nobody knows what the machine did meanwhile: it may have been asleep and cold,
        # so integrating the last power across the gap would invent heat, and counters may have
        # been reset by the resume. Such an interval counts as zero and the baselines restart.
        # A clock that runs backwards (it should not) is treated the same way.
        interval = dt if dt is not None and 0.0 < dt <= self._max_gap_s else None
        self._last_mono = snap.mono_s

        components = [self._gpu(g, interval) for g in snap.gpus]
        seen = {_gpu_key(g) for g in snap.gpus}
        for key in [k for k in self._gpus if k not in seen]:
            del self._gpus[key]  # a GPU that went away starts again from no baseline
        components.append(self._cpu(snap, interval))
        if self._rest_w > 0.0:
            rest_j = self._rest_w * interval if interval is not None else 0.0
            components.append(ComponentPower("rest", self._rest_w, Provenance.ESTIMATE, rest_j))

        wall = self._plug_figure(plug, interval)
        plug_error = None
        if plug is not None and not plug.usable:
            plug_error = plug.error or "The plug gave neither a power nor an energy reading."
        if wall is not None:
            return HeatTick(
                dt_s=interval if interval is not None else 0.0,
                heat_w=wall.power_w,
                provenance=Provenance.PLUG,
                energy_j=wall.energy_j,
                components=tuple(components),
                plug=wall,
            )

        known = [c for c in components if c.power_w is not None and c.provenance is not None]
        heat_w = sum(c.power_w for c in known if c.power_w is not None) if known else None
        provenance = (
            max((c.provenance for c in known if c.provenance is not None), key=lambda p: p.rank)
            if known
            else None
        )
        return HeatTick(
            dt_s=interval if interval is not None else 0.0,
            heat_w=heat_w,
            provenance=provenance,
            energy_j=sum(c.energy_j for c in components),
            components=tuple(components),
            plug_error=plug_error,
        )

    # -- the wall plug ------------------------------------------------------------------------

    def _plug_figure(self, plug: PlugReading | None, dt: float | None) -> ComponentPower | None:
        """The plug's power and energy this tick, or None where the parts must book it."""
        prev = self._plug
        if plug is None or not plug.usable:
            # Gone (or never there): the parts book the ticks until it is back, and a baseline
            # kept across that spell would book the spell a second time.
            self._plug = None
            return None
        self._plug = _PlugState(plug.power_w, plug.energy_total_j)
        if dt is None:
            # No interval: the power now; the counter is the baseline of the next tick.
            if plug.power_w is None:
                return None
            return ComponentPower(PLUG, plug.power_w, Provenance.PLUG)
        if prev is not None and prev.total_j is not None and plug.energy_total_j is not None:
            delta_j = plug.energy_total_j - prev.total_j
            if 0.0 <= delta_j <= PLUG_MAX_POWER_W * dt * IMPLAUSIBLE_FACTOR + PLUG_COUNTER_STEP_J:
                power_w = plug.power_w if plug.power_w is not None else delta_j / dt
                return ComponentPower(PLUG, power_w, Provenance.PLUG, delta_j)
            # Backwards (the plug restarted, or its counter was reset) or a leap: never negative
            # or invented energy. This interval falls back to the plug's power readings; the new
            # value (kept above) is the baseline of the next delta.
        # The plug's first interval (back, or just set up: no baseline yet), a reset, or a plug
        # without a counter: its power readings, as a GPU's without a counter.
        readings_j = _trapezoid(prev.power_w if prev is not None else None, plug.power_w, dt)
        if readings_j is None:
            return None  # a counter alone and no baseline yet: the parts book this interval
        power_w = plug.power_w if plug.power_w is not None else readings_j / dt
        return ComponentPower(PLUG, power_w, Provenance.PLUG, readings_j)

    # -- GPUs ---------------------------------------------------------------------------------

    def _gpu(self, g: GpuReading, dt: float | None) -> ComponentPower:  # noqa: PLR0911 - a return per case of the counter, each explained
        name = f"gpu{g.index}"
        key = _gpu_key(g)
        prev = self._gpus.get(key)
        state = _GpuState(g.power_w)
        self._gpus[key] = state

        if dt is None or prev is None:
            # No interval: report the instantaneous power reading, integrate nothing; a counter
            # read now is the baseline of the next span.
            state.anchor_mj = g.energy_mj
            if g.power_w is None:
                return ComponentPower(name, None, None)
            return ComponentPower(name, g.power_w, Provenance.POWER_READING)

        readings_j = _trapezoid(prev.power_w, g.power_w, dt)
        if prev.anchor_mj is None:
            # No counter on this card (or none read yet): power readings, tick by tick.
            state.anchor_mj = g.energy_mj
            if readings_j is None:
                return ComponentPower(name, None, None)
            return ComponentPower(name, readings_j / dt, Provenance.POWER_READING, readings_j)

        span_s = prev.span_s + dt
        span_power_j = (
            None
            if prev.span_power_j is None or readings_j is None
            else prev.span_power_j + readings_j
        )
        if g.energy_mj is None:
            # The counter was not read this tick: its next read books this interval too.
            state.anchor_mj = prev.anchor_mj
            state.span_s = span_s
            state.span_power_j = span_power_j
            state.last_counter_w = prev.last_counter_w
            shown = g.power_w if g.power_w is not None else prev.last_counter_w
            if shown is None:
                return ComponentPower(name, None, None)
            return ComponentPower(name, shown, Provenance.ENERGY_COUNTER)

        state.anchor_mj = g.energy_mj
        delta_j = (g.energy_mj - prev.anchor_mj) / 1000.0
        ceiling_w = g.power_limit_max_w or UNKNOWN_MAX_POWER_W
        if 0.0 <= delta_j <= ceiling_w * span_s * IMPLAUSIBLE_FACTOR:
            state.last_counter_w = delta_j / span_s
            return ComponentPower(name, delta_j / span_s, Provenance.ENERGY_COUNTER, delta_j)
        # Otherwise the counter went backwards or leapt: a reset. The span falls back to the
        # power readings; the counter's new value (stored above) is the new baseline.
        if span_power_j is None:
            return ComponentPower(name, None, None)
        return ComponentPower(name, span_power_j / span_s, Provenance.POWER_READING, span_power_j)

    # -- CPU ----------------------------------------------------------------------------------

    def _cpu(self, snap: Snapshot, dt: float | None) -> ComponentPower:
        prev = self._rapl
        self._rapl = {r.name: r for r in snap.rapl}
        if dt is not None and snap.rapl:
            energy_j = _rapl_energy_j(prev, snap.rapl, dt)
            if energy_j is not None:
                return ComponentPower("cpu", energy_j / dt, Provenance.ENERGY_COUNTER, energy_j)
        # No RAPL, its first tick, or a counter that reset: the utilisation model.
        cpu_pct = snap.host.cpu_pct
        if cpu_pct is None:
            return ComponentPower("cpu", None, None)
        power_w = self._estimate.cpu_power_w(cpu_pct)
        energy_j = power_w * dt if dt is not None else 0.0
        return ComponentPower("cpu", power_w, Provenance.ESTIMATE, energy_j)


def _gpu_key(g: GpuReading) -> str:
    # The UUID follows a card even when the driver renumbers the indexes.
    return g.uuid or f"index:{g.index}"


def _trapezoid(p0: float | None, p1: float | None, dt: float) -> float | None:
    if p0 is not None and p1 is not None:
        return (p0 + p1) / 2.0 * dt
    # One reading only (a card that just started or stopped answering): hold it over dt.
    one = p1 if p1 is not None else p0
    return None if one is None else one * dt


def _rapl_energy_j(
    prev: dict[str, RaplReading], now: tuple[RaplReading, ...], dt: float
) -> float | None:
    """Energy of all packages over ``dt``, or None unless every package has a plausible delta."""
    total_uj = 0
    for r in now:
        p = prev.get(r.name)
        if p is None:
            return None
        # RAPL counters wrap at max_energy_range_uj (about 262 kJ: every hour or so at full load).
        delta_uj = (r.energy_uj - p.energy_uj) % (r.max_energy_range_uj + 1)
        if delta_uj / 1e6 > UNKNOWN_MAX_POWER_W * dt * IMPLAUSIBLE_FACTOR:
            return None  # a counter re-based (module reload), not a wrap
        total_uj += delta_uj
    return total_uj / 1e6
