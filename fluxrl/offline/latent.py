"""What latent-space offline algorithms (CNF, PLAS) share: the dataset and a frozen pre-trained decoder as the runner's
one read-only `data`, and host-side evaluation of a policy that acts through the decoder.

The decoder (a normalizing flow, `flows.StateFlow`, or a VAE, `vae.ConditionalVAE`) maps latents and normalised
states to actions inside the action bounds: `decoder.decode(latent, observations)`. It is trained before the run,
shared by every seed, never in a checkpoint and never updated by the RL losses (they differentiate with respect to
the actor and critics only).
"""

from __future__ import annotations

from typing import Any, Callable

import equinox as eqx
import jax

from fluxrl.offline.common import Evaluation, OfflineData, evaluate_policy


class LatentData(eqx.Module):
    """The runner's shared `data` of a latent-space run: the dataset and the frozen decoder."""

    offline: OfflineData
    # The decoder (an eqx.Module with decode(latent, observations) -> actions) split into its arrays and the rest:
    # the runner passes `data` through jit as it is, and non-array leaves such as flowjax's shapes must stay static.
    decoder_arrays: Any
    decoder_static: Any = eqx.field(static=True)

    @property
    def decoder(self) -> Any:
        """The frozen decoder."""
        return eqx.combine(self.decoder_arrays, self.decoder_static)

    @property
    def evaluation(self) -> Evaluation | None:
        """The dataset's host-side evaluation, if any."""
        return self.offline.evaluation

    @property
    def obs_mean(self) -> jax.Array:
        """Mean used to normalise observations."""
        return self.offline.obs_mean

    @property
    def obs_std(self) -> jax.Array:
        """Standard deviation used to normalise observations."""
        return self.offline.obs_std

    @property
    def max_action(self) -> float:
        """Actions lie in [-max_action, max_action]."""
        return self.offline.max_action


def make_latent_data(offline: OfflineData, decoder: Any) -> LatentData:
    """The shared `data` of a latent-space run; ValueError when the decoder's action bounds are not the data's."""
    if float(decoder.max_action) != float(offline.max_action):
        raise ValueError(f"the decoder decodes into +-{decoder.max_action} but the dataset's actions lie in "
                         f"+-{offline.max_action}.")
    arrays, static = eqx.partition(decoder, eqx.is_array)
    return LatentData(offline, arrays, static)


def latent_host_evaluator(act: Callable[[Any, Any, Any, jax.Array, jax.Array], jax.Array]) -> Callable:
    """`evaluate_host(config, data, state, key)` for a policy `act(config, state.actor, decoder, observations,
    key)` giving the actions of a batch of normalised observations; the policy runs jitted on the host."""
    # filter_jit: the config and the decoder's non-array leaves (flowjax's shapes) stay static.
    jitted = eqx.filter_jit(act)

    def evaluate_host(config: Any, data: LatentData, state: Any, key: Any) -> dict[str, float]:
        """Mean return and normalised score of the policy over the evaluation's episodes; {} without one."""
        # Host copies: the seed's arrays live on whichever device trained it.
        actor, decoder = jax.device_get(state.actor), jax.device_get(data.decoder)
        return evaluate_policy(data, lambda observations, action_key: jitted(config, actor, decoder, observations,
                                                                             action_key), key)

    return evaluate_host
