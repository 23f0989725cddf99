#!/usr/bin/awk -f
# compare-truth.awk: how far tracked positions are from the simulator's
# ground truth. Both files are mstk track TSV (frame t_ns bead x_nm y_nm
# z_nm roi_x0 roi_y0); rows are matched on (frame, bead).
#   awk -v nm_per_px=100 -f compare-truth.awk truth.tsv tracks.tsv
# Prints: matched rows, NaN rows, RMS and mean error in x, y (px) and z (nm).
BEGIN { FS = "\t"; if (!nm_per_px) nm_per_px = 1 }
/^#/ { next }
FNR == NR { tx[$1 SUBSEP $3] = $4; ty[$1 SUBSEP $3] = $5; tz[$1 SUBSEP $3] = $6; next }
{
	k = $1 SUBSEP $3
	if (!(k in tx)) { unmatched++; next }
	if ($4 == "nan" || $5 == "nan") { nanxy++; next }
	dx = ($4 - tx[k]) / nm_per_px; dy = ($5 - ty[k]) / nm_per_px
	n++; sx += dx; sy += dy; sxx += dx * dx; syy += dy * dy
	if ($6 == "nan") { nanz++; next }
	dz = $6 - tz[k]
	nz++; sz += dz; szz += dz * dz
}
END {
	if (!n) { print "no matched rows"; exit 1 }
	printf "rows %d nan_xy %d nan_z %d unmatched %d\n", n, nanxy, nanz, unmatched
	printf "rms_x_px %.5f rms_y_px %.5f mean_x_px %.5f mean_y_px %.5f\n", \
		sqrt(sxx / n), sqrt(syy / n), sx / n, sy / n
	if (nz) printf "rms_z_nm %.3f mean_z_nm %.3f\n", sqrt(szz / nz), sz / nz
}
