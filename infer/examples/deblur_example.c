/* deblur_example: embedding the C API (infer/deblur.h) from C11. Loads a model, deblurs a
 * synthetic RGB8 test pattern, and prints the time taken, how much the image changed and a
 * checksum of the output.
 *
 *   deblur_example MODEL.safetensors [WIDTH HEIGHT]     (default 320 x 240)
 *
 * Exits 0 on success, 1 with deblur_last_error() on a failure, 2 on bad arguments. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "infer/deblur.h"

static double now_seconds(void) {
  struct timespec ts;
  timespec_get(&ts, TIME_UTC);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Parses a side length in [1, 65536]; 0 when the text is not one. */
static int parse_side(const char* text) {
  char* end = NULL;
  const long value = strtol(text, &end, 10);
  return (*text && !*end && value >= 1 && value <= 65536) ? (int)value : 0;
}

/* A test card: colour ramps, a checkerboard in the top half and a ring in the bottom half, so
 * the model has edges and smooth areas to work on. */
static void fill_pattern(unsigned char* rgb, int width, int height, int stride) {
  for (int y = 0; y < height; ++y) {
    unsigned char* row = rgb + (size_t)y * (size_t)stride;
    for (int x = 0; x < width; ++x) {
      const int u = x * 255 / width, v = y * 255 / height;
      int r = u, g = v, b = 255 - (u + v) / 2;
      if (y < height / 2 && ((x / 8 + y / 8) & 1)) r = g = b = 230;
      const int dx = x - width / 2, dy = y - 3 * height / 4;
      const int d2 = dx * dx + dy * dy, radius = (height < width ? height : width) / 5;
      if (d2 < radius * radius && d2 > radius * radius / 2) r = g = b = 20;
      row[3 * x + 0] = (unsigned char)r;
      row[3 * x + 1] = (unsigned char)g;
      row[3 * x + 2] = (unsigned char)b;
    }
  }
}

int main(int argc, char** argv) {
  if (argc != 2 && argc != 4) {
    fprintf(stderr, "usage: %s MODEL.safetensors [WIDTH HEIGHT]\n", argv[0]);
    return 2;
  }
  const int width = argc == 4 ? parse_side(argv[2]) : 320;
  const int height = argc == 4 ? parse_side(argv[3]) : 240;
  if (!width || !height) {
    fprintf(stderr, "deblur_example: WIDTH and HEIGHT must be integers from 1 to 65536\n");
    return 2;
  }
  printf("deblur library %s (header %s)\n", deblur_version(), DEBLUR_VERSION_STRING);

  double start = now_seconds();
  deblur_model* model = deblur_model_load(argv[1]);
  if (!model) {
    fprintf(stderr, "deblur_example: %s\n", deblur_last_error());
    return 1;
  }
  printf("load       %s in %.3f s\n", argv[1], now_seconds() - start);

  const int stride = 3 * width;
  const size_t bytes = (size_t)stride * (size_t)height;
  unsigned char* in = malloc(bytes);
  unsigned char* out = malloc(bytes);
  if (!in || !out) {
    fprintf(stderr, "deblur_example: cannot allocate two %dx%d images\n", width, height);
    free(in);
    free(out);
    deblur_model_free(model);
    return 1;
  }
  fill_pattern(in, width, height, stride);

  const deblur_options options = deblur_default_options();
  start = now_seconds();
  const int status = deblur_run_rgb8(model, in, width, height, stride, out, stride, &options);
  const double seconds = now_seconds() - start;
  if (status != 0) {
    fprintf(stderr, "deblur_example: %s\n", deblur_last_error());
  } else {
    /* Mean absolute change per value, and FNV-1a over the output bytes. */
    unsigned long long change = 0;
    unsigned long checksum = 2166136261ul;
    for (size_t i = 0; i < bytes; ++i) {
      change += (unsigned long long)abs((int)out[i] - (int)in[i]);
      checksum = ((checksum ^ out[i]) * 16777619ul) & 0xfffffffful;
    }
    printf("deblur     %dx%d RGB8, tile %d, overlap %d: %.3f s (%.3g Mpixel/s)\n", width, height,
           options.tile, options.overlap, seconds, (double)width * height / seconds / 1e6);
    printf("output     mean absolute change %.3f levels, FNV-1a checksum %08lx\n",
           (double)change / (double)bytes, checksum);
  }
  free(in);
  free(out);
  deblur_model_free(model);
  return status == 0 ? 0 : 1;
}
