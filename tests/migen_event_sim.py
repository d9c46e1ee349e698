"""Migen's simulator with event-driven scheduling: the same evaluator, fewer statements run per cycle.

Migen's `Simulator` executes every synchronous statement at each clock edge, then every combinational
statement of the design, again and again until no signal changes, so one cycle costs a few passes over
the whole design. `EventSimulator` keeps Migen's own `Evaluator` (its expression evaluation and
assignment, with the widths of `If` / `Case` tests computed once), its memory model, clocks and
generators, and changes only which statements run:

* combinational statements are grouped by the signals they drive (as Migen's Verilog backend groups them
  into `always @(*)` blocks, each preceded by its targets' defaults, as Migen's simulator prepends them);
  a group runs when a signal it names has changed, until nothing changes;
* a clock domain's synchronous statements, grouped the same way, run at an edge only if a signal they
  name (their own registers included) changed since the previous edge.

A group's new values are a function of the committed values it reads, so a group whose inputs are
unchanged would assign exactly what its targets already hold: the state after every edge is Migen's.
`tests/fpga/test_network_migen_sim.py` runs one program through both schedulers and requires identical
reads.
"""

from __future__ import annotations

from migen.fhdl.bitcontainer import value_bits_sign
from migen.fhdl.structure import Case, Constant, If, _Assign, _Part
from migen.fhdl.tools import group_by_targets, list_targets
from migen.fhdl.visit import NodeVisitor
from migen.sim.core import DummyVCDWriter, Evaluator, Simulator, _truncate


class _Reads(NodeVisitor):
    """Every signal a statement names (targets too: an over-approximation only costs a rerun), and
    whether it names a clock or reset signal."""

    def __init__(self) -> None:
        self.signals: set = set()
        self.clocked = False

    def visit_Signal(self, node) -> None:
        self.signals.add(node)

    def visit_ClockSignal(self, node) -> None:
        self.clocked = True

    def visit_ResetSignal(self, node) -> None:
        self.clocked = True

    def visit_unknown(self, node) -> None:
        if isinstance(node, _Part):  # migen's NodeVisitor does not descend into a part select
            self.visit(node.value)
            self.visit(node.offset)
        elif node is not None:
            raise TypeError(f"the event-driven scheduler cannot list the signals of {type(node).__name__}")


class _WidthCachingEvaluator(Evaluator):
    """Migen's `Evaluator`, with the width of every `If` condition and `Case` test computed once (Migen's
    recomputes `len(cond)` through the whole expression tree at every execution); the rest is Migen's."""

    def __init__(self, clock_domains, replaced_memories) -> None:
        super().__init__(clock_domains, replaced_memories)
        self._widths: dict[int, tuple] = {}

    def _width(self, node) -> tuple:
        found = self._widths.get(id(node))
        if found is None:
            found = self._widths[id(node)] = (value_bits_sign(node), node)  # the node is kept alive with its id
        return found[0]

    def execute(self, statements) -> None:
        for s in statements:
            t = type(s)
            if t is _Assign:
                self.assign(s.l, self.eval(s.r))
            elif t is If:
                if self.eval(s.cond) & ((1 << self._width(s.cond)[0]) - 1):
                    self.execute(s.t)
                else:
                    self.execute(s.f)
            elif t is Case:
                nbits, signed = self._width(s.test)
                test = _truncate(self.eval(s.test), nbits, signed)
                found = False
                for key, body in s.cases.items():
                    if isinstance(key, Constant) and key.value == test:
                        self.execute(body)
                        found = True
                        break
                if not found and "default" in s.cases:
                    self.execute(s.cases["default"])
            elif t is list or t is tuple:
                self.execute(s)
            else:
                super().execute([s])


class EventSimulator(Simulator):
    """`migen.sim.Simulator` with event-driven scheduling (see the module docstring)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if type(self.vcd) is not DummyVCDWriter:
            raise ValueError("vcd_name: the event-driven scheduler does not trace; use migen's Simulator")
        replaced = self.evaluator.replaced_memories  # type: ignore[has-type]  # set by Simulator.__init__
        self.evaluator = _WidthCachingEvaluator(self.fragment.clock_domains, replaced)
        fragment = self.fragment
        comb = fragment.comb
        n_defaults = len(list_targets(comb))  # Simulator prepended one `s.eq(s.reset)` per comb target
        self._clocks = [signal for cd in fragment.clock_domains for signal in (cd.clk, cd.rst) if signal is not None]
        self._comb = self._schedule(comb[n_defaults:], defaults=True)
        self._sync = {cd: self._schedule(statements, defaults=False) for cd, statements in fragment.sync.items()}
        self._dirty: dict[str, set | None] = {cd: None for cd in self._sync}  # None: all due (the first edge)

    def _schedule(self, statements, defaults: bool) -> tuple[list[list], dict[int, list[int]]]:
        """Blocks of statements grouped by target, and for each signal the blocks that read it."""
        blocks: list[list] = []
        readers: dict[int, list[int]] = {}
        for targets, group in group_by_targets(statements):
            head = [t.eq(t.reset) for t in sorted(targets, key=lambda s: s.duid)] if defaults else []
            reads = _Reads()
            reads.visit(group)
            for signal in reads.signals | (set(self._clocks) if reads.clocked else set()):
                readers.setdefault(signal.duid, []).append(len(blocks))
            blocks.append(head + list(group))
        return blocks, readers

    def _commit_and_comb_propagate(self) -> None:
        evaluator = self.evaluator
        blocks, readers = self._comb
        changed = evaluator.commit_set()
        while changed:
            for dirty in self._dirty.values():
                if dirty is not None:
                    dirty |= changed
            due = sorted({index for duid in changed for index in readers.get(duid, ())})
            for index in due:
                evaluator.execute(blocks[index])
            changed = evaluator.commit_set()

    def _clock_edge(self, cd: str) -> None:
        """Run the domain's synchronous blocks that read a signal changed since the last edge (a block whose
        inputs, its own registers included, are unchanged would assign what they already hold)."""
        blocks, readers = self._sync[cd]
        dirty = self._dirty[cd]
        due = range(len(blocks)) if dirty is None else sorted(
            {index for duid in dirty for index in readers.get(duid, ())})
        for index in due:
            self.evaluator.execute(blocks[index])
        self._dirty[cd] = set()

    def run(self) -> None:
        evaluator = self.evaluator
        for block in self._comb[0]:  # every group once, as Migen's first full pass
            evaluator.execute(block)
        self._commit_and_comb_propagate()
        while True:
            _, rising, falling = self.time.tick()
            for cd in rising:
                evaluator.assign(self.fragment.clock_domains[cd].clk, 1)
                if cd in self._sync:
                    self._clock_edge(cd)
                if cd in self.generators:
                    self._process_generators(cd)
            for cd in falling:
                evaluator.assign(self.fragment.clock_domains[cd].clk, 0)
            self._commit_and_comb_propagate()
            if not self._continue_simulation():
                break


def run_event_simulation(module, generators, **kwargs) -> None:
    """`migen.sim.run_simulation` with `EventSimulator`."""
    with EventSimulator(module, generators, **kwargs) as simulator:
        simulator.run()
