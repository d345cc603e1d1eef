"""Tests of the model variants' records."""

import ml_collections
import pytest

from deq_clrs.training import preflight
from deq_clrs.training import variants


def test_every_variant_names_a_processor_that_fits_it():
  for name, variant in variants.VARIANTS.items():
    assert variant.name == name and variant.description
    processors = (preflight.EQUILIBRIUM_PROCESSORS if variant.equilibrium
                  else preflight.CELL_PROCESSORS)
    assert variant.default_processor in processors, name


def test_only_dear_is_an_equilibrium_model_and_it_sees_no_hints():
  dear = variants.VARIANTS['dear']
  assert [v.name for v in variants.VARIANTS.values() if v.equilibrium] == [
      'dear']
  assert not (dear.encodes_hints or dear.decodes_hints
              or dear.learned_termination)


@pytest.mark.parametrize('model, encodes, decodes', [
    ('dear', False, False), ('nar', False, False), ('nar_lt', False, True),
    ('nar_hints', True, True)])
def test_what_each_variant_encodes_and_decodes(model, encodes, decodes):
  variant = variants.VARIANTS[model]
  assert (variant.encodes_hints, variant.decodes_hints) == (encodes, decodes)


def test_an_unknown_model_is_refused_with_the_valid_ones():
  config = ml_collections.ConfigDict({'model': 'deer'})
  with pytest.raises(ValueError, match=r"unknown model 'deer'; expected one "
                     r"of \['dear', 'nar', 'nar_lt', 'nar_hints'\]"):
    variants.of(config)


def test_preflight_reads_the_records():
  for name, variant in variants.VARIANTS.items():
    config = ml_collections.ConfigDict({'model': name, 'processor': ''})
    assert preflight.processor_name(config) == variant.default_processor
    assert preflight.is_equilibrium(config) == variant.equilibrium
    assert preflight.uses_hints(config) == variant.encodes_hints
