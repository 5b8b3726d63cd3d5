package agent

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
)

// CallbackURL returns the URL the conductor can reach a command API
// listening on listen at: http://<ip>:<port>, where ip is listen's own
// address when it has one, else the local address the kernel picks to
// reach apiURL (found by connecting a UDP socket, which sends nothing).
func CallbackURL(ctx context.Context, apiURL string, listen net.Addr) (string, error) {
	tcp, ok := listen.(*net.TCPAddr)
	if !ok {
		return "", fmt.Errorf("agent: callback URL: listen address %v is not TCP", listen)
	}
	port := strconv.Itoa(tcp.Port)
	if !tcp.IP.IsUnspecified() && tcp.IP != nil {
		return "http://" + net.JoinHostPort(tcp.IP.String(), port), nil
	}
	u, err := url.Parse(apiURL)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("agent: callback URL: API URL %q: want http(s)://host[:port]", apiURL)
	}
	apiPort := u.Port()
	if apiPort == "" {
		apiPort = "80"
		if u.Scheme == "https" {
			apiPort = "443"
		}
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "udp", net.JoinHostPort(u.Hostname(), apiPort))
	if err != nil {
		return "", fmt.Errorf("agent: callback URL: route to the API: %w", err)
	}
	local := c.LocalAddr().(*net.UDPAddr).IP
	_ = c.Close()
	return "http://" + net.JoinHostPort(local.String(), port), nil
}
