// A Java Swing window for the held-out corpus (issue 20), run as a single source file on the virtual
// display: java tests/SwingWindow.java metal|nimbus. A labelled form (text fields, a combo box), a check
// box and OK / Cancel, in the Metal or the Nimbus look and feel. It stays open until it is closed.

import java.awt.BorderLayout;
import java.awt.FlowLayout;
import java.awt.Font;
import java.awt.GridBagConstraints;
import java.awt.GridBagLayout;
import java.awt.Insets;
import javax.swing.BorderFactory;
import javax.swing.JButton;
import javax.swing.JCheckBox;
import javax.swing.JComboBox;
import javax.swing.JFrame;
import javax.swing.JLabel;
import javax.swing.JPanel;
import javax.swing.JTextField;
import javax.swing.SwingUtilities;
import javax.swing.UIManager;

public class SwingWindow {
    public static void main(String[] args) throws Exception {
        String look = args.length > 0 ? args[0] : "metal";
        UIManager.setLookAndFeel(look.equals("nimbus") ? "javax.swing.plaf.nimbus.NimbusLookAndFeel"
                                                       : "javax.swing.plaf.metal.MetalLookAndFeel");
        SwingUtilities.invokeLater(() -> show());
    }

    static void show() {
        JFrame frame = new JFrame("Book a room");
        JPanel body = new JPanel(new BorderLayout());
        body.setBorder(BorderFactory.createEmptyBorder(16, 20, 16, 20));
        JLabel heading = new JLabel("Reserve a room");
        heading.setFont(heading.getFont().deriveFont(Font.BOLD, 20f));
        body.add(heading, BorderLayout.NORTH);
        JPanel form = new JPanel(new GridBagLayout());
        GridBagConstraints at = new GridBagConstraints();
        at.insets = new Insets(6, 0, 6, 12);
        at.anchor = GridBagConstraints.WEST;
        String[][] rows = {{"Guest name:", "Maria Lopez"}, {"Date:", "12 March 2027"}, {"Notes:", ""}};
        for (int row = 0; row < rows.length; row++) {
            at.gridy = row;
            at.gridx = 0;
            at.fill = GridBagConstraints.NONE;
            at.weightx = 0;
            form.add(new JLabel(rows[row][0]), at);
            at.gridx = 1;
            at.fill = GridBagConstraints.HORIZONTAL;
            at.weightx = 1;
            form.add(new JTextField(rows[row][1], 24), at);
        }
        at.gridy = rows.length;
        at.gridx = 0;
        at.fill = GridBagConstraints.NONE;
        at.weightx = 0;
        form.add(new JLabel("Room:"), at);
        at.gridx = 1;
        at.fill = GridBagConstraints.HORIZONTAL;
        form.add(new JComboBox<>(new String[] {"Harbour view", "Garden"}), at);
        at.gridy = rows.length + 1;
        form.add(new JCheckBox("Send a reminder"), at);
        body.add(form, BorderLayout.CENTER);
        JPanel buttons = new JPanel(new FlowLayout(FlowLayout.RIGHT, 10, 0));
        JButton ok = new JButton("OK");
        buttons.add(ok);
        buttons.add(new JButton("Cancel"));
        body.add(buttons, BorderLayout.SOUTH);
        frame.setContentPane(body);
        frame.setSize(560, 340);
        frame.setLocation(40, 40);
        frame.setDefaultCloseOperation(JFrame.EXIT_ON_CLOSE);
        frame.setVisible(true);
        ok.requestFocusInWindow();  // focus on a button: no caret in a field
    }
}
