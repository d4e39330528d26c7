/*
 * loss_network.h - the network loss's private side (losses/loss_network.c) for the
 * classifier-guided model (models/model_classifier_guided.c).
 */
#ifndef LGD_LOSS_NETWORK_H
#define LGD_LOSS_NETWORK_H

#include <stddef.h>

#include "core/internal.h"

/* Evaluates l at x[batch][dim] (n = 1; all pointers backend memory) through
 * lgd_loss_eval_raw(), which checks the outputs are finite: an INPUT_NOISY network loss
 * at noise level sigma (finite, > 0), any other loss as it is. */
lgd_status lgd_loss_eval_at_sigma(lgd_loss *l, const float *x, size_t batch, float sigma,
                                  float *loss, float *grad);

#endif
