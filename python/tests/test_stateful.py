"""Hypothesis state machines: each store type against a dict model."""

from __future__ import annotations

import shutil
import tempfile

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import pysciqlop_cache as sc
from conftest import open_store

keys = st.one_of(
    st.text(max_size=6),
    st.binary(max_size=4),
    st.integers(min_value=-(2**66), max_value=2**66),
    st.sampled_from([1.5, -0.25, (1, "a"), ("\x00i1",), None]),
)
values = st.one_of(
    st.integers(min_value=-(2**65), max_value=2**65),
    st.text(max_size=10),
    st.binary(max_size=10),
    st.lists(st.integers(), max_size=3),
    st.just(None),
    st.binary(min_size=9000, max_size=9000),  # a file-backed value
)


def canon(k):
    # The model is a dict; True == 1 == 1.0 there, and keys here avoid bools and
    # floats equal to ints so that the model and the store agree on identity.
    return (type(k).__name__, k)


class StoreMachine(RuleBasedStateMachine):
    kind = "Cache"

    @initialize()
    def open(self):
        self.dir = tempfile.mkdtemp(prefix="sqc-hyp-")
        self.store = open_store(self.kind, self.dir + "/s")
        self.model: dict = {}

    def teardown(self):
        if hasattr(self, "store"):
            self.store.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    @rule(k=keys, v=values)
    def set(self, k, v):
        self.store[k] = v
        self.model[canon(k)] = (k, v)

    @rule(k=keys, v=values)
    def add(self, k, v):
        added = self.store.add(k, v)
        assert added == (canon(k) not in self.model)
        if added:
            self.model[canon(k)] = (k, v)

    @rule(k=keys)
    def get(self, k):
        want = self.model.get(canon(k), (None, None))[1]
        assert self.store.get(k) == want

    @rule(k=keys)
    def delete(self, k):
        assert self.store.delete(k) == (canon(k) in self.model)
        self.model.pop(canon(k), None)

    @rule(k=keys)
    def pop(self, k):
        want = self.model.pop(canon(k), (None, None))[1]
        if isinstance(self.store, (sc.Index, sc.FanoutIndex)):
            assert self.store.pop(k, None) == want
        else:
            assert self.store.pop(k) == want

    @rule(k=keys, d=st.integers(min_value=-(2**62), max_value=2**62))
    def incr(self, k, d):
        current = self.model.get(canon(k), (k, 0))[1]
        if type(current) is not int:
            return
        assert self.store.incr(k, d) == current + d
        self.model[canon(k)] = (k, current + d)

    @rule(k=keys)
    def contains(self, k):
        assert (k in self.store) == (canon(k) in self.model)

    @rule(data=st.data())
    def transaction_rolled_back(self, data):
        k = data.draw(keys)
        tx = self.store.transact(k) if self.kind.startswith("Fanout") else self.store.transact()
        try:
            with tx:
                self.store[k] = "doomed"
                raise RuntimeError("roll back")
        except RuntimeError:
            pass

    @precondition(lambda self: len(self.model) > 0)
    @rule()
    def clear(self):
        assert self.store.clear() == len(self.model)
        self.model.clear()

    @invariant()
    def same_keys_and_len(self):
        if not hasattr(self, "store"):
            return
        assert len(self.store) == len(self.model)
        listed = self.store.keys()
        assert sorted(map(canon, listed), key=repr) == sorted(self.model, key=repr)


def machine(kind):
    cls = type(f"{kind}Machine", (StoreMachine,), {"kind": kind})
    cls.TestCase.settings = settings(
        max_examples=25, stateful_step_count=30, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    return cls


TestCacheMachine = machine("Cache").TestCase
TestIndexMachine = machine("Index").TestCase
TestFanoutCacheMachine = machine("FanoutCache").TestCase
TestFanoutIndexMachine = machine("FanoutIndex").TestCase


class CheckAfterMachine(StoreMachine):
    """The store stays structurally sound (check() ok) after any sequence."""

    @invariant()
    def check_ok(self):
        if hasattr(self, "store"):
            assert self.store.check().ok


CheckAfterMachine.TestCase.settings = settings(max_examples=10, stateful_step_count=20, deadline=None,
                                               suppress_health_check=[HealthCheck.too_slow])
TestCheckAfterMachine = CheckAfterMachine.TestCase
