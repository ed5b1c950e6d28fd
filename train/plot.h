// The run folder's metrics.png: training and validation loss, and validation PSNR against the
// blurry inputs' own, by epoch, drawn from metrics.csv with a small built-in raster font (no
// plotting library).
#pragma once

#include <string>

namespace deblur::train {

// Reads `csv_path` (the trainer's metrics.csv) and writes the plot to `png_path` atomically.
// Throws deblur::Error naming the file when the CSV cannot be read.
void plot_metrics(const std::string& csv_path, const std::string& png_path);

}  // namespace deblur::train
