/*
 * lgd/lgd.h - liblgd: loss-guided diffusion, the whole public API.
 *
 * Sample from p0(x0) exp(-l(x0)) / Z with a pretrained diffusion denoiser and a
 * differentiable loss of your own, without retraining (Song et al., "Loss-Guided
 * Diffusion Models for Plug-and-Play Controllable Generation", ICML 2023).
 *
 *   lgd_context  - backend (CPU or CUDA), logging, last error     <lgd/context.h>
 *   lgd_tensor   - float32 data on the backend                    <lgd/tensor.h>
 *   lgd_model    - denoiser D(x, sigma) and its VJP               <lgd/model.h>
 *   lgd_loss     - l(x0) with its gradient                        <lgd/loss.h>
 *   lgd_guidance - DPS, LGD-MC, exact estimators, step rules      <lgd/guidance.h>
 *   lgd_sampler  - Euler/DDIM, Heun, DPM-Solver++(2M), schedules  <lgd/sampler.h>
 *   lgd_network  - networks from weights files or callbacks        <lgd/network.h>
 *   trajectories - the paper's trajectory prior and losses         <lgd/trajectory.h>
 *
 * Conventions: every fallible call returns lgd_status (0 = LGD_OK) and leaves a
 * message in lgd_context_last_error(); handles are opaque, destroy(NULL) is a
 * no-op; option structs begin with struct_size and only grow at the end.
 */
#ifndef LGD_LGD_H
#define LGD_LGD_H

#include "common.h"
#include "context.h"
#include "tensor.h"
#include "model.h"
#include "loss.h"
#include "guidance.h"
#include "schedule.h"
#include "sampler.h"
#include "network.h"
#include "trajectory.h"

#endif
