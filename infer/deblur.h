/* deblur.h: the C API for embedding CPU inference of a DeblurUNet. Plain C (C89 or later, and
 * C++), no C++ types; link against deblur_infer with a C++ linker.
 *
 *   deblur_model* model = deblur_model_load("model.safetensors");
 *   if (!model) { fprintf(stderr, "%s\n", deblur_last_error()); return 1; }
 *   deblur_options options = deblur_default_options();
 *   if (deblur_run_rgb8(model, rgb, width, height, 0, out, 0, &options) != 0)
 *     fprintf(stderr, "%s\n", deblur_last_error());
 *   deblur_model_free(model);
 *
 * Pixels: 8-bit RGB, interleaved (R, G, B per pixel), rows top to bottom. A value p enters the
 * model as p / 127.5 - 1; an output y leaves as round((clamp(y, -1, 1) + 1) * 127.5).
 *
 * Memory: the image runs through the model in tiles (deblur_options.tile) blended with a feather
 * over their overlap, so the model's working memory is bounded by the tile size, not the image
 * size. Besides it, a call holds a packed 8-bit copy of its input and of its output (6 bytes per
 * pixel) and the stitch's accumulators (16 bytes per pixel of one row of tiles).
 *
 * Errors: no C++ exception ever leaves these functions (out of memory included); a failure is a
 * NULL or non-zero return and a message from deblur_last_error(). Images over 268435456 pixels
 * (16384 x 16384, the CLI's default limit) are refused before anything is allocated.
 *
 * Threads: a model is read-only once loaded. Any number of threads may call deblur_run_rgb8 on
 * the same model at the same time (each call allocates its own buffers); deblur_model_free must
 * not race with a run on that model. Each call uses the calling thread plus a team of CPU threads
 * (OpenMP): with several concurrent calls, set deblur_options.threads to share the cores. */
#ifndef DEBLUR_C_API_H
#define DEBLUR_C_API_H

#ifdef __cplusplus
extern "C" {
#endif

/* The version of this header; deblur_version() gives the library's, which should match. */
#define DEBLUR_VERSION_STRING "0.1.0"

/* A loaded model. Opaque: made by deblur_model_load, released by deblur_model_free. */
typedef struct deblur_model deblur_model;

/* How deblur_run_rgb8 runs. Start from deblur_default_options() and change fields, so that
 * fields added later get their defaults. */
typedef struct deblur_options {
  int tile;    /* tile side in pixels, a multiple of 16; 0: the whole image as one tile. 512 */
  int overlap; /* pixels neighbouring tiles share, 0 <= overlap < tile / 2. 64 */
  int threads; /* CPU threads for this call; 0: the process default (all cores or
                  OMP_NUM_THREADS). 0 */
} deblur_options;

/* tile 512, overlap 64, threads 0. */
deblur_options deblur_default_options(void);

/* Loads DeblurUNet weights from a safetensors file (F32, F16 or BF16, PyTorch's tensor names and
 * shapes). Returns NULL on failure (unreadable or malformed file, names or shapes that do not
 * match, out of memory) with the reason, naming the file, in deblur_last_error(). The caller
 * owns the model and releases it with deblur_model_free. */
deblur_model* deblur_model_load(const char* path);

/* Deblurs a width x height RGB8 image.
 *   rgb, stride_bytes:         the input; row y starts at rgb + y * stride_bytes.
 *   out_rgb, out_stride_bytes: where the output goes, the same size; only the 3 * width bytes
 *                              of each row are written, padding between rows is left as it is.
 *   A stride of 0 means packed rows (3 * width); otherwise it must be at least 3 * width.
 *   out_rgb may be rgb (in place), with any strides: the whole input is read before any output
 *   is written. The buffers stay the caller's; nothing is kept after the call returns.
 *   options: NULL for deblur_default_options().
 * Returns 0 on success; non-zero on failure (NULL pointer, non-positive size, stride too small,
 * invalid options, out of memory) with the reason in deblur_last_error(); out_rgb is then
 * unchanged. */
int deblur_run_rgb8(deblur_model* model, const unsigned char* rgb, int width, int height,
                    int stride_bytes, unsigned char* out_rgb, int out_stride_bytes,
                    const deblur_options* options);

/* Releases a model; NULL is ignored. */
void deblur_model_free(deblur_model* model);

/* The message of the last deblur_model_load or deblur_run_rgb8 call on this thread: why it
 * failed, or "" when it succeeded (or before any call). Owned by the library; valid until the
 * next such call on this thread. Never NULL. */
const char* deblur_last_error(void);

/* The library's version, "MAJOR.MINOR.PATCH"; a static string. */
const char* deblur_version(void);

#ifdef __cplusplus
}
#endif

#endif /* DEBLUR_C_API_H */
