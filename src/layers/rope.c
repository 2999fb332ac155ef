/* rope.c — rotary position embeddings as Hugging Face's Llama-family checkpoints expect them
 * (see layers.h). The weights were trained with "rotate half": q[i] pairs with q[i + D/2].
 * Pairing adjacent dimensions (q[2i], q[2i+1]), the original paper's and GPT-J's layout, runs
 * the same checkpoint into fluent-looking garbage, so the pairing is tested against an
 * independent reference. */
#include <math.h>
#include <stddef.h>

#include "linshard/kernels.h"
#include "linshard/layers.h"

/* Llama 3's scaling (transformers' _compute_llama3_parameters): long wavelengths are slowed
 * by `factor`, short ones kept, and the band between interpolated smoothly. */
static double scaled_inv_freq(double f, int i, const rope_scaling_params *s) {
    if (s && s->kind == 2) return f / (double)s->freq_factors[i];
    if (!s || s->kind != 1) return f;
    double old = (double)s->original_max_positions;
    double low_wavelen = old / s->low_freq_factor, high_wavelen = old / s->high_freq_factor;
    double wavelen = 2.0 * 3.14159265358979323846 / f;
    if (wavelen < high_wavelen) return f;
    if (wavelen > low_wavelen) return f / s->factor;
    double smooth =
        (old / wavelen - s->low_freq_factor) / (s->high_freq_factor - s->low_freq_factor);
    return (1.0 - smooth) * f / s->factor + smooth * f;
}

void rope_table(float *cos_sin, int pos0, int T, int D, double theta,
                const rope_scaling_params *scaling) {
    int half = D / 2;
    for (int i = 0; i < half; i++) {
        double f = scaled_inv_freq(pow(theta, -2.0 * i / D), i, scaling);
        for (int t = 0; t < T; t++) {
            double angle = (double)(pos0 + t) * f;
            cos_sin[(size_t)t * (size_t)D + (size_t)i] = (float)cos(angle);
            cos_sin[(size_t)t * (size_t)D + (size_t)(half + i)] = (float)sin(angle);
        }
    }
}

void rope_llama3_factors(const rope_scaling_params *s, double theta, int D, float *factors) {
    /* convert_hf_to_gguf.py's LlamaModel.generate_extra_tensors, in double like Python */
    double old = (double)s->original_max_positions;
    double low_wavelen = old / s->low_freq_factor, high_wavelen = old / s->high_freq_factor;
    for (int i = 0; i < D / 2; i++) {
        double wavelen = 2.0 * 3.14159265358979323846 / pow(theta, -2.0 * i / D);
        double smooth =
            (old / wavelen - s->low_freq_factor) / (s->high_freq_factor - s->low_freq_factor);
        factors[i] = wavelen < high_wavelen  ? 1.0f
                     : wavelen > low_wavelen ? (float)s->factor
                                             : (float)(1.0 / ((1.0 - smooth) / s->factor + smooth));
    }
}

void rope_apply(float *x, const float *cos_sin, int D) {
    kernel_rope(x, cos_sin, D);
}
